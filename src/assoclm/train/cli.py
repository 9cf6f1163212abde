"""`assoclm train`: flags -> (model config, TrainConfig) -> Trainer.run().

Precedence: built-in defaults < ``--preset`` < flags given on the command line. On
``--resume`` the run's saved settings are used; only the limits, evaluation and checkpoint
cadence, device and output directory may change, and any other flag that disagrees with the
checkpoint is an error (it would silently not apply).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from assoclm.models import MODELS, model_classes
from assoclm.train.config import DATASET_MODES, PRECISIONS, TOKENIZERS, TrainConfig
from assoclm.train.presets import PRESETS, get_preset

# flag dest -> model config field (each model family takes the ones its config has)
MODEL_FLAGS = ("hidden_size", "num_layers", "memory_key_size", "memory_value_size",
               "memory_heads", "mlp", "mlp_multiplier", "write_rate", "forget_rate",
               "write_from", "chunk_size", "conv_size", "num_heads", "max_context",
               "num_kv_heads", "attn_rank", "osc_steps", "mtp_heads", "traits",
               "freeze_memories")
# TrainConfig fields a resumed run may change.
RESUMABLE = ("max_steps", "max_tokens", "time_budget", "eval_every", "eval_tokens",
             "eval_probes", "checkpoint_every", "keep_checkpoints", "device")
DEFAULT_LIMIT_STEPS = 1000


def parse_duration(text: str) -> float:
    """Seconds from '300', '300s', '5m', '1.5h'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with s, m or h (e.g. 300, 5m)"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def _traits(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    s = argparse.SUPPRESS  # unset flags stay absent, so presets and resumes can tell
    p = argparse.ArgumentParser(
        prog="assoclm train",
        description="Train a model on built-in or local text. Example: "
                    "assoclm train --preset demo --out runs/demo",
        argument_default=s,
    )
    run = p.add_argument_group("run")
    run.add_argument("--model", choices=sorted(MODELS),
                     help="propagator (default; delta-rule memory), hebbian (the same block "
                          "with additive writes) or transformer (RoPE, SwiGLU, KV cache)")
    run.add_argument("--preset", choices=sorted(PRESETS),
                     help="; ".join(f"{k}: {v[0]}" for k, v in PRESETS.items()))
    run.add_argument("--out", help="run directory (default runs/<preset or model>)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (default: refuse)")
    run.add_argument("--resume", metavar="DIR",
                     help="continue a run from its directory or a checkpoint directory")
    run.add_argument("--seed", type=int, help="model init and data order (default 0)")
    run.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    run.add_argument("--precision", choices=PRECISIONS, help="autocast dtype (default float32)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--sample-prompt", metavar="TEXT",
                     help="after training, print a sample continuing TEXT")
    run.add_argument("--sample-tokens", type=int, default=200,
                     help="length of that sample in tokens (default 200)")

    data = p.add_argument_group("data")
    data.add_argument("--data", help="built-in corpus name, file, directory, glob or a comma "
                                     "list of them (default shakespeare; duplex: extra JSONL)")
    data.add_argument("--dataset-mode", choices=DATASET_MODES,
                      help="text (default): language modelling; duplex_chat: the full-duplex "
                           "protocol on a dialogue mix (--data adds local JSONL to it)")
    data.add_argument("--duplex-mix", help="dialogue sources with weights, e.g. "
                                           "'chatterbot:1,shakespeare:1,memory:2'")
    data.add_argument("--memory-dialogues", type=int,
                      help="synthetic memory dialogues to generate for the mix (default: "
                           "exactly the memory share; needed when the mix is only memory)")
    data.add_argument("--memory-options",
                      help="shape of the synthetic memory dialogues, e.g. 'num_facts=2,"
                           "num_updates=1-2,distractor_turns=0,question_distance=0' (default "
                           "num_facts=2-4,num_updates=1-2,distractor_turns=1-3)")
    data.add_argument("--p-interrupt", type=float,
                      help="share of model turns cut by a synthetic interrupt (default 0.2)")
    data.add_argument("--listen-weight", type=float,
                      help="loss weight of [LISTEN] targets (default 0.05)")
    data.add_argument("--answer-weight", type=float,
                      help="loss weight of the model's text when it answers a memory "
                           "question (default 1, like the rest of its text)")
    data.add_argument("--tokenizer", choices=TOKENIZERS, help="default bpe")
    data.add_argument("--vocab-size", type=int, help="BPE vocabulary (default 4096)")
    data.add_argument("--val-fraction", type=float, help="documents held out (default 0.1)")
    data.add_argument("--batch-size", type=int, help="lanes per step (default 16)")
    data.add_argument("--unroll-len", type=int, help="tokens per lane per step (default 128)")
    data.add_argument("--streaming", action=argparse.BooleanOptionalAction,
                      help="carry the memory across steps within a document (default on)")

    model = p.add_argument_group("model")
    model.add_argument("--hidden-size", type=int)
    model.add_argument("--num-layers", type=int)
    model.add_argument("--memory-key-size", type=int)
    model.add_argument("--memory-value-size", type=int)
    model.add_argument("--memory-heads", type=int)
    model.add_argument("--mlp", choices=["swiglu", "silu"])
    model.add_argument("--mlp-multiplier", type=float)
    model.add_argument("--write-rate", type=float)
    model.add_argument("--forget-rate", type=float)
    model.add_argument("--write-from", choices=["input", "output"],
                       help="input: chunk-parallel (default); output: the seed's dataflow")
    model.add_argument("--chunk-size", type=int, help="delta-rule chunk length (power of 2)")
    model.add_argument("--conv-size", type=int,
                       help="short causal convolution before q, k, v (0: none, the default)")
    model.add_argument("--num-heads", type=int, help="transformer: attention heads")
    model.add_argument("--max-context", type=int,
                       help="transformer, positronic: attention window in tokens (the KV "
                            "cache size)")
    model.add_argument("--num-kv-heads", type=int, help="positronic: key/value heads (GQA)")
    model.add_argument("--attn-rank", type=int,
                       help="positronic: rank of the low-rank query and output projections")
    model.add_argument("--osc-steps", type=int, help="positronic: Euler steps per token (4)")
    model.add_argument("--mtp-heads", type=int,
                       help="positronic: draft heads for speculative decoding (4; 0: none)")
    model.add_argument("--traits", type=_traits,
                       help="positronic: comma-separated optional traits (hrm, moe, jepa, "
                            "fractal_seed, interstitial, controllers, specialists)")
    model.add_argument("--freeze-memories", action=argparse.BooleanOptionalAction,
                       help="positronic: no test-time writes to the traits' memories")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--learning-rate", type=float, help="peak AdamW learning rate")
    opt.add_argument("--min-lr-ratio", type=float, help="final lr / peak lr (default 0.1)")
    opt.add_argument("--warmup-steps", type=int)
    opt.add_argument("--weight-decay", type=float)
    opt.add_argument("--grad-clip", type=float, help="global norm (default 1.0)")

    limits = p.add_argument_group("limits and evaluation (the first limit reached stops)")
    limits.add_argument("--max-steps", type=int)
    limits.add_argument("--max-tokens", type=int)
    limits.add_argument("--time-budget", type=parse_duration, help="e.g. 300, 5m, 1h")
    limits.add_argument("--eval-every", type=int, help="steps between evaluations (0: at end)")
    limits.add_argument("--eval-tokens", type=int, help="held-out tokens per evaluation")
    limits.add_argument("--eval-probes", type=int,
                        help="duplex: memory questions answered per evaluation (200)")
    limits.add_argument("--checkpoint-every", type=int, help="default: --eval-every")
    limits.add_argument("--keep-checkpoints", type=int, help="newest checkpoints kept (1)")
    return p


def _split_flags(flags: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    model = {k: v for k, v in flags.items() if k in MODEL_FLAGS}
    train = {k: v for k, v in flags.items() if k not in MODEL_FLAGS}
    return model, train


def configs_from_flags(flags: dict[str, Any]) -> tuple[dict[str, Any], TrainConfig]:
    """(model config overrides, TrainConfig) for a fresh run."""
    model_flags, train_flags = _split_flags(flags)
    model_cfg, train_cfg = {}, {}
    name = train_flags.get("model", "propagator")
    if "preset" in train_flags:
        model_cfg, train_cfg = get_preset(train_flags["preset"], name)
        # A step or token limit given on the command line replaces the preset's clock (the
        # learning-rate schedule follows whichever limit is set).
        if any(train_flags.get(k) is not None for k in ("max_steps", "max_tokens")) and \
                train_flags.get("time_budget") is None:
            train_cfg.pop("time_budget", None)
    check_model_flags(name, model_flags)
    model_cfg.update(model_flags)
    train_cfg.update(train_flags)
    limits = ("max_steps", "max_tokens", "time_budget")
    if not any(train_cfg.get(k) is not None for k in limits):
        train_cfg["max_steps"] = DEFAULT_LIMIT_STEPS
    return model_cfg, TrainConfig.from_dict(train_cfg)


def check_model_flags(name: str, model_flags: dict[str, Any]) -> None:
    """Every model flag given must be a setting of the chosen model family."""
    config_cls, _ = model_classes(name)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    foreign = [f"--{k.replace('_', '-')}" for k in model_flags if k not in fields]
    if foreign:
        usable = [f"--{k.replace('_', '-')}" for k in MODEL_FLAGS if k in fields]
        raise ValueError(f"{', '.join(foreign)} does not apply to --model {name}; "
                         f"its model flags are: {' '.join(usable)}")


def resume_configs(flags: dict[str, Any], ckpt: Path) -> TrainConfig:
    """The saved TrainConfig with the allowed changes; other changes are errors."""
    from assoclm.train.checkpoint import load_trainer_state, read_model_config

    saved, _ = load_trainer_state(ckpt)
    saved_cfg = dict(saved["train_config"])
    _, model_cfg = read_model_config(ckpt)
    model_flags, train_flags = _split_flags(flags)
    conflicts = [f"--{k.replace('_', '-')} {v} (the run has {model_cfg.get(k)})"
                 for k, v in model_flags.items() if model_cfg.get(k) != v]
    conflicts += [f"--{k.replace('_', '-')} {v} (the run has {saved_cfg.get(k)})"
                  for k, v in train_flags.items()
                  if k not in RESUMABLE and saved_cfg.get(k) != v]
    if conflicts:
        raise ValueError(
            "cannot change these settings when resuming: " + "; ".join(conflicts)
            + ". A resumed run may only change: "
            + ", ".join("--" + k.replace("_", "-") for k in RESUMABLE)
        )
    saved_cfg.update({k: v for k, v in train_flags.items() if k in RESUMABLE})
    return TrainConfig.from_dict(saved_cfg)


def remove_run(out: Path) -> None:
    """Delete what a previous run wrote in ``out`` (and nothing else)."""
    import shutil

    from assoclm.train.checkpoint import CHECKPOINTS, LATEST
    from assoclm.train.loop import METRICS_FILE, PLOT_FILE

    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    for name in (LATEST, METRICS_FILE, PLOT_FILE):
        (out / name).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    args = vars(build_parser().parse_args(argv))
    out = args.pop("out", None)
    resume = args.pop("resume", None)
    progress = not args.pop("no_progress", False)
    overwrite = args.pop("overwrite", False)
    sample_prompt = args.pop("sample_prompt", None)
    sample_tokens = args.pop("sample_tokens", 200)
    if sample_prompt is not None and (not sample_prompt or sample_tokens < 1):
        print("assoclm train: --sample-prompt needs a non-empty text and --sample-tokens >= 1",
              file=sys.stderr)
        return 2

    from assoclm.data import DataError
    from assoclm.train.checkpoint import CheckpointError, resolve_checkpoint
    from assoclm.train.loop import Trainer, TrainError

    def fail(message: str) -> int:
        print(f"assoclm train: {message}", file=sys.stderr)
        return 2

    try:
        if resume is not None:
            ckpt = resolve_checkpoint(resume)
            config = resume_configs(args, ckpt)
            model_cfg: dict[str, Any] = {}
            out = out or str(ckpt.parent.parent)
        else:
            model_cfg, config = configs_from_flags(args)
            out = out or f"runs/{config.preset or config.model}"
            if overwrite:
                remove_run(Path(out))
            elif (Path(out) / "latest").exists():
                return fail(f"{out} already holds a run; continue it with --resume {out}, "
                            "or choose another --out")
        trainer = Trainer(config, model_cfg, out, resume=resume, progress=progress)
    except (ValueError, TrainError, CheckpointError, DataError) as exc:
        return fail(str(exc))

    model = trainer.model
    print(f"model: {config.model}, {trainer.num_parameters / 1e6:.2f}M parameters; "
          + ", ".join(f"{f.name}={getattr(model.config, f.name)}"
                      for f in dataclasses.fields(model.config)
                      if f.name in MODEL_FLAGS + ("vocab_size",)), flush=True)
    print(describe_state(model), flush=True)
    result = trainer.run()
    rate = result.tokens / max(result.elapsed_s, 1e-9)
    print(f"trained {result.step} steps, {result.tokens:,} tokens in {result.elapsed_s:.0f}s "
          f"({rate:,.0f} tokens/s, evaluation included)")
    print(f"held-out loss {result.val_loss:.4f} nats/token, {result.val_bpb:.4f} bits/byte")
    sample = None
    if sample_prompt is not None:
        sample = sample_text(trainer, sample_prompt, sample_tokens, config.seed)
        print(f"sample (temperature {SAMPLING['temperature']}, top-k {SAMPLING['top_k']}, "
              f"top-p {SAMPLING['top_p']}, seed {config.seed}):")
        print(sample["prompt"] + sample["text"])
    summary = write_summary(Path(out), argv, trainer, result, sample)
    print(f"checkpoint: {result.checkpoint}")
    print(f"loss curve: {Path(out) / 'loss.png'}; summary: {summary}")
    return 0


def describe_state(model) -> str:
    """One line on what the model keeps of the context: a constant-size memory or a cache."""
    from assoclm.models import MemoryState

    state = model.init_state(1)
    if isinstance(state, MemoryState):
        return f"memory state: {state.nbytes:,} bytes per sequence, whatever its length"
    c = model.config
    return (f"KV cache: {c.kv_cache_bytes(1):,} bytes per token of context, up to "
            f"{c.max_context:,} tokens ({c.kv_cache_bytes(c.max_context):,} bytes)")


SAMPLING = {"temperature": 0.8, "top_k": 50, "top_p": 0.95}


def sample_text(trainer, prompt: str, max_new_tokens: int, seed: int) -> dict[str, Any]:
    """A sample from the trained model, the same way 'assoclm generate' would draw it."""
    from assoclm.generation import generate

    model = trainer.model.eval()
    ids = list(generate(model, trainer.tokenizer.encode(prompt), max_new_tokens, seed=seed,
                        banned_ids=trainer.tokenizer.special_ids, **SAMPLING))
    return {"prompt": prompt, "text": trainer.tokenizer.decode(ids), "tokens": len(ids),
            "seed": seed, **SAMPLING}


def write_summary(out: Path, argv: list[str], trainer, result, sample) -> Path:
    """``summary.json``: the run's final numbers with the command, commit and machine."""
    import json

    from assoclm.bench.common import provenance, write_json_atomic
    from assoclm.train.plot import read_metrics

    train_records, _ = read_metrics(out / "metrics.jsonl")
    step_rates = sorted(r["tokens_per_s"] for r in train_records[len(train_records) // 10:])
    model = trainer.model
    summary = {
        "suite": "train-run",
        "provenance": provenance("assoclm.cli", ["train", *argv], trainer.device),
        "model": trainer.config.model,
        "parameters": trainer.num_parameters,
        "model_config": model.config.to_dict(),
        "train_config": trainer.config.to_dict(),
        "data": trainer.data_spec,
        "tokenizer": {"kind": trainer.tokenizer.kind, "vocab_size": trainer.tokenizer.vocab_size},
        "memory_state_bytes": getattr(model.init_state(1), "nbytes", None),
        "state": describe_state(model),
        "steps": result.step,
        "tokens": result.tokens,
        "elapsed_s": result.elapsed_s,
        "tokens_per_s_overall": result.tokens / max(result.elapsed_s, 1e-9),
        "tokens_per_s_training_median": step_rates[len(step_rates) // 2] if step_rates else None,
        "val_loss": result.val_loss,
        "val_bpb": result.val_bpb,
        "val_tokens": (trainer.last_eval or {}).get("tokens"),
        "interrupted": result.interrupted,
        "sample": sample,
    }
    json.dumps(summary)  # fail here, not halfway through the file, if something is not JSON
    return write_json_atomic(out / "summary.json", summary)
