"""`assoclm train`: flags -> (model config, TrainConfig, task) -> Trainer.run().

Precedence: built-in defaults < ``--preset`` < flags given on the command line. On
``--resume`` the run's saved settings are used; only the limits, evaluation and checkpoint
cadence, device and output directory may change, and any other flag that disagrees with the
checkpoint is an error (it would silently not apply).

The model flags are the fields each model config declares with ``assoclm.config.flag``
(help and allowed values included); a flag applies to the families whose config has it.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from assoclm.checkpoint import (
    CheckpointError,
    load_trainer_state,
    read_model_config,
    resolve_checkpoint,
)
from assoclm.config import flag_fields
from assoclm.data import DataError
from assoclm.duplex.task import TASKS, build_task, split_run_config
from assoclm.generation import generate
from assoclm.models import MODELS, model_spec
from assoclm.train.config import PRECISIONS, TOKENIZERS
from assoclm.train.loop import Trainer, TrainError
from assoclm.train.presets import PRESETS, get_preset
from assoclm.train.run import describe_state, remove_run, write_summary
from assoclm.train.task import Task

# Settings a resumed run may change.
RESUMABLE = ("max_steps", "max_tokens", "time_budget", "eval_every", "eval_tokens",
             "eval_probes", "checkpoint_every", "keep_checkpoints", "device")
DEFAULT_LIMIT_STEPS = 1000
SAMPLING = {"temperature": 0.8, "top_k": 50, "top_p": 0.95}


def trainable_models() -> list[str]:
    """Registered models the trainer can train (causal language models)."""
    return [name for name, spec in MODELS.items() if "causal_lm" in spec.capabilities]


@dataclasses.dataclass(frozen=True)
class ModelFlag:
    """One model flag: what it sets, its help and choices, and the families that take it."""

    name: str
    help: str
    choices: tuple | None
    kind: type
    families: tuple[str, ...]


def model_flags() -> dict[str, ModelFlag]:
    """Every model flag of the trainable models, from their configs' declared fields."""
    found: dict[str, ModelFlag] = {}
    for family in trainable_models():
        for f in flag_fields(model_spec(family).config):
            meta = f.metadata["flag"]
            known = found.get(f.name)
            families = (known.families if known else ()) + (family,)
            found[f.name] = ModelFlag(f.name, known.help if known else meta["help"],
                                      meta["choices"], _value_kind(f), families)
    return found


def _value_kind(field: dataclasses.Field) -> type:
    """bool, int, float, list (a comma list) or str: what a config field holds, from its
    annotation (a string: the configs use postponed annotations)."""
    annotation = str(field.type)
    for kind, words in ((list, ("tuple", "list", "Sequence")), (bool, ("bool",)), (int, ("int",)),
                        (float, ("float",))):
        if any(re.search(rf"\b{w}\b", annotation) for w in words):
            return kind
    return str


def parse_duration(text: str) -> float:
    """Seconds from '300', '300s', '5m', '1.5h'."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with s, m or h (e.g. 300, 5m)"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def comma_list(text: str) -> list[str]:
    """argparse type: 'a,b' -> ['a', 'b'] (blank entries dropped)."""
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_model_flag(group: Any, spec: ModelFlag) -> None:
    option = "--" + spec.name.replace("_", "-")
    help_ = f"{spec.help} [{', '.join(spec.families)}]"
    if spec.kind is bool:
        group.add_argument(option, action=argparse.BooleanOptionalAction, help=help_)
    elif spec.kind is list:
        if spec.choices:
            help_ += f"; comma-separated, from: {', '.join(spec.choices)}"
        group.add_argument(option, type=comma_list, help=help_)
    else:
        group.add_argument(option, type=spec.kind, choices=spec.choices, help=help_)


def build_parser() -> argparse.ArgumentParser:
    s = argparse.SUPPRESS  # unset flags stay absent, so presets and resumes can tell
    p = argparse.ArgumentParser(
        prog="assoclm train",
        description="Train a model on built-in or local text. Example: "
                    "assoclm train --preset demo --out runs/demo",
        argument_default=s,
    )
    run = p.add_argument_group("run")
    run.add_argument("--model", choices=sorted(trainable_models()),
                     help="; ".join(f"{name}: {MODELS[name].description}"
                                    for name in trainable_models()) + " (default propagator)")
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
    data.add_argument("--dataset-mode", choices=tuple(TASKS),
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

    model = p.add_argument_group("model (each flag applies to the families in brackets)")
    for spec in model_flags().values():
        _add_model_flag(model, spec)

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
    """(model flags, run settings) of the parsed flags."""
    names = model_flags()
    model = {k: v for k, v in flags.items() if k in names}
    run = {k: v for k, v in flags.items() if k not in names}
    return model, run


def configs_from_flags(flags: dict[str, Any]) -> tuple[dict[str, Any], Any, Task]:
    """(model config overrides, TrainConfig, task) for a fresh run."""
    model_flags_given, run_flags = _split_flags(flags)
    model_cfg: dict[str, Any] = {}
    run_cfg: dict[str, Any] = {}
    name = run_flags.get("model", "propagator")
    if "preset" in run_flags:
        model_cfg, run_cfg = get_preset(run_flags["preset"], name)
        # A step or token limit given on the command line replaces the preset's clock (the
        # learning-rate schedule follows whichever limit is set).
        if any(run_flags.get(k) is not None for k in ("max_steps", "max_tokens")) and \
                run_flags.get("time_budget") is None:
            run_cfg.pop("time_budget", None)
    check_model_flags(name, model_flags_given)
    model_cfg.update(model_flags_given)
    run_cfg.update(run_flags)
    limits = ("max_steps", "max_tokens", "time_budget")
    if not any(run_cfg.get(k) is not None for k in limits):
        run_cfg["max_steps"] = DEFAULT_LIMIT_STEPS
    config, settings = split_run_config(run_cfg)
    return model_cfg, config, build_task(config, settings)


def check_model_flags(name: str, model_flags_given: dict[str, Any]) -> None:
    """Every model flag given must be a setting of the chosen model family."""
    known = model_flags()
    foreign = [f"--{k.replace('_', '-')}" for k in model_flags_given
               if name not in known[k].families]
    if foreign:
        usable = [f"--{k.replace('_', '-')}" for k, spec in known.items()
                  if name in spec.families]
        raise ValueError(f"{', '.join(foreign)} does not apply to --model {name}; "
                         f"its model flags are: {' '.join(usable)}")


def resume_configs(flags: dict[str, Any], ckpt: Path) -> tuple[Any, Task]:
    """The saved TrainConfig and task with the allowed changes; other changes are errors."""
    saved, _ = load_trainer_state(ckpt)
    saved_cfg = dict(saved["train_config"])
    _, model_cfg = read_model_config(ckpt)
    model_flags_given, run_flags = _split_flags(flags)
    conflicts = [f"--{k.replace('_', '-')} {v} (the run has {model_cfg.get(k)})"
                 for k, v in model_flags_given.items() if model_cfg.get(k) != v]
    conflicts += [f"--{k.replace('_', '-')} {v} (the run has {saved_cfg.get(k)})"
                  for k, v in run_flags.items()
                  if k not in RESUMABLE and saved_cfg.get(k) != v]
    if conflicts:
        raise ValueError(
            "cannot change these settings when resuming: " + "; ".join(conflicts)
            + ". A resumed run may only change: "
            + ", ".join("--" + k.replace("_", "-") for k in RESUMABLE)
        )
    saved_cfg.update({k: v for k, v in run_flags.items() if k in RESUMABLE})
    config, settings = split_run_config(saved_cfg)
    return config, build_task(config, settings)


def sample_text(trainer: Trainer, prompt: str, max_new_tokens: int, seed: int
                ) -> dict[str, Any]:
    """A sample from the trained model, the same way 'assoclm generate' would draw it."""
    model = trainer.model.eval()
    ids = list(generate(model, trainer.tokenizer.encode(prompt), max_new_tokens, seed=seed,
                        banned_ids=trainer.tokenizer.special_ids, **SAMPLING))
    return {"prompt": prompt, "text": trainer.tokenizer.decode(ids), "tokens": len(ids),
            "seed": seed, **SAMPLING}


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

    def fail(message: str) -> int:
        print(f"assoclm train: {message}", file=sys.stderr)
        return 2

    try:
        if resume is not None:
            ckpt = resolve_checkpoint(resume)
            config, task = resume_configs(args, ckpt)
            model_cfg: dict[str, Any] = {}
            out = out or str(ckpt.parent.parent)
        else:
            model_cfg, config, task = configs_from_flags(args)
            out = out or f"runs/{config.preset or config.model}"
            if overwrite:
                remove_run(Path(out))
            elif (Path(out) / "latest").exists():
                return fail(f"{out} already holds a run; continue it with --resume {out}, "
                            "or choose another --out")
        trainer = Trainer(config, model_cfg, out, resume=resume, progress=progress, task=task)
    except (ValueError, TrainError, CheckpointError, DataError) as exc:
        return fail(str(exc))

    model = trainer.model
    shown = set(model_flags()) | {"vocab_size"}
    print(f"model: {config.model}, {trainer.num_parameters / 1e6:.2f}M parameters; "
          + ", ".join(f"{f.name}={getattr(model.config, f.name)}"
                      for f in dataclasses.fields(model.config) if f.name in shown), flush=True)
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
