"""Language modelling: held-out bits per byte of the three model families, side by side.

    assoclm bench lm                        # demo-sized models, 1M training tokens each
    assoclm bench lm --quick --data FILE    # tiny models, a few steps (seconds)

Each model is trained by the same trainer (``assoclm train``) on the same data with the same
tokenizer, the same number of training tokens and the same settings; the model configs come
from one preset (``--preset``, default ``demo``), whose families are sized to equal
parameters. Held-out bits per byte is measured the same way for all: every held-out
document read in order with the state carried. Target: propagator within 3% of
the transformer.

Writes a JSON result (``--out``) with each model's loss curve and a PNG beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from assoclm.bench.common import apply_quick, name_list, require_positive, write_result
from assoclm.bench.render import listed_targets, machine_line, with_targets
from assoclm.data import DataError
from assoclm.duplex.task import build_task, split_run_config
from assoclm.io import provenance, save_figure_atomic
from assoclm.train.loop import Trainer, TrainError
from assoclm.train.plot import Ema, read_metrics
from assoclm.train.presets import PRESETS, get_preset
from assoclm.train.run import remove_run

DEFAULT_OUT = "benchmarks/results/lm-cpu.json"
MODELS = ("propagator", "hebbian", "transformer")
TARGET_GAP = 0.03  # propagator bpb at most 3% above the transformer's


def train_one(name: str, args: argparse.Namespace) -> dict:
    return train_run(name, args)[0]


def train_run(name: str, args: argparse.Namespace, overrides: dict | None = None,
              run_name: str | None = None, train_overrides: dict | None = None
              ) -> tuple[dict, object]:
    """Train model family ``name`` of ``args.preset`` (its config updated by ``overrides``,
    the trainer's by ``train_overrides``) for ``args.tokens`` tokens in ``args.runs/run_name``;
    returns (its row, the trainer)."""
    model_cfg, train_cfg = get_preset(args.preset, name)
    model_cfg.update(overrides or {})
    train_cfg.update({"model": name, "preset": args.preset, "max_tokens": args.tokens,
                      "time_budget": None, "max_steps": None, "eval_every": 0,
                      "eval_tokens": args.eval_tokens, "seed": args.seed,
                      "device": args.device, "checkpoint_every": None})
    train_cfg.update(train_overrides or {})
    if args.data:
        train_cfg["data"] = args.data
    if args.tokenizer:
        train_cfg["tokenizer"] = args.tokenizer
    config, settings = split_run_config(train_cfg)
    out = Path(args.runs) / (run_name or name)
    remove_run(out)  # a benchmark run starts from scratch
    trainer = Trainer(config, model_cfg, out, progress=args.progress,
                      log=(lambda m: None) if not args.verbose else None,
                      task=build_task(config, settings))
    result = trainer.run()
    train_records, eval_records = read_metrics(out / "metrics.jsonl")
    rates = sorted(r["tokens_per_s"] for r in train_records[len(train_records) // 10:])
    return {
        "model": run_name or name,
        "parameters": trainer.num_parameters,
        "config": trainer.model.config.to_dict(),
        "steps": result.step,
        "tokens": result.tokens,
        "elapsed_s": result.elapsed_s,
        "tokens_per_s_median": rates[len(rates) // 2] if rates else None,
        "val_loss": result.val_loss,
        "val_bpb": result.val_bpb,
        "val_tokens": (trainer.last_eval or {}).get("tokens"),
        "curve": [{"step": r["step"], "tokens": r["tokens"], "loss": r["loss"]}
                  for r in train_records],
    }, trainer


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    # taken first: the commit the run started from, before anything else changes
    prov = provenance("assoclm.cli", ["bench", "lm", *argv], args.device)
    start = time.perf_counter()
    rows = []
    for name in args.models:
        row = train_one(name, args)
        rows.append(row)
        print(f"{name}: {row['parameters']:,} parameters, {row['tokens']:,} tokens, "
              f"held-out {row['val_bpb']:.4f} bits/byte")
    result = {
        "suite": "lm",
        "provenance": prov,
        "config": {"preset": args.preset, "tokens": args.tokens, "data": args.data or
                   "shakespeare", "eval_tokens": args.eval_tokens, "seed": args.seed,
                   "tokenizer": args.tokenizer or get_preset(args.preset)[1].get(
                       "tokenizer", "bpe")},
        "rows": rows,
        "targets": [] if args.quick else targets(rows),
        "elapsed_s": time.perf_counter() - start,
    }
    return result


def targets(rows: list[dict]) -> list[dict]:
    """Propagator's held-out bits/byte relative to the transformer's (when both ran)."""
    by = {r["model"]: r for r in rows}
    if "propagator" not in by or "transformer" not in by:
        return []
    gap = by["propagator"]["val_bpb"] / by["transformer"]["val_bpb"] - 1
    return [{"name": "propagator held-out bits/byte relative to the transformer",
             "goal": f"<= +{TARGET_GAP:.0%}", "measured": gap, "met": gap <= TARGET_GAP}]


def render(result: dict) -> str:
    """A Markdown table of each model's parameters, training tokens and held-out bits per
    byte, how they were trained, and the target."""
    lines = ["| model | parameters | training tokens | held-out bits/byte |",
             "|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['tokens']:,} | "
                     f"{r['val_bpb']:.4f} |")
    cfg = result["config"]
    lines += ["", f"`{cfg['preset']}` preset of each family on `{cfg['data']}` "
                  f"({cfg['tokenizer']} tokenizer), same tokens and settings; "
                  f"{machine_line(result['provenance'])}."]
    return with_targets(lines, result["targets"])


# the targets the run judged, as it wrote them
stated_targets = listed_targets


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    plot_loss_curves(ax, result["rows"])
    cfg = result["config"]
    ax.set_title(f"assoclm bench lm: {cfg['preset']} preset on {cfg['data']} @ "
                 f"{result['provenance']['git_commit'][:12]}", fontsize=9)
    save_figure_atomic(fig, path)
    plt.close(fig)


def plot_loss_curves(ax, rows: list[dict]) -> None:
    """Each trained row's training loss (EMA) against tokens, labelled with its held-out
    bits per byte."""

    for row in rows:
        ema, ys = Ema(0.95), []
        for r in row["curve"]:
            ema.add(r["loss"])
            ys.append(ema.value)
        ax.plot([r["tokens"] / 1e6 for r in row["curve"]], ys,
                label=f"{row['model']} ({row['parameters'] / 1e6:.2f}M): "
                      f"{row['val_bpb']:.3f} bits/byte held out")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("training loss (nats/token, EMA)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assoclm bench lm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=name_list(MODELS + ("positronic",)), default=list(MODELS),
                   help=f"comma list (default {','.join(MODELS)}; positronic also allowed)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--tokens", type=int, default=1_000_000, help="training tokens per model")
    p.add_argument("--eval-tokens", type=int, default=65536, help="held-out tokens scored")
    p.add_argument("--data", help="corpus or local files (default: the preset's, Shakespeare)")
    add_run_flags(p, runs="runs/bench-lm", out=DEFAULT_OUT)
    return p


def add_run_flags(p: argparse.ArgumentParser, runs: str, out: str) -> None:
    """The flags of every suite that trains through ``train_run``: tokenizer, seed, device,
    where the runs and the result go, --quick, and output switches."""
    p.add_argument("--tokenizer", choices=("bpe", "byte"), help="default: the preset's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--runs", default=runs, help="where the training runs go")
    p.add_argument("--quick", action="store_true", help="tiny preset, a few steps")
    p.add_argument("--out", default=out, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--verbose", action=argparse.BooleanOptionalAction, default=True)


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, preset="tiny", tokens=2048, eval_tokens=1024)
    require_positive(parser, args, ("tokens", "eval_tokens"))

    try:
        result = run(args, argv)
    except (ValueError, DataError, TrainError) as exc:
        parser.error(str(exc))
    write_result(result, args.out, None if args.no_plot else plot)
    return result


if __name__ == "__main__":
    main()
