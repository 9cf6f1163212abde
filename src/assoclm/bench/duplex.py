"""Full-duplex protocol: the protocol metrics of each model family, side by side.

    assoclm bench duplex                 # demo-sized models on the default dialogue mix
    assoclm bench duplex --quick         # tiny models, a few steps (under a minute)

Each model is trained by the same trainer (``assoclm train --dataset-mode duplex_chat``) on
the same dialogue mix, with the same tokenizer, number of training tokens and settings, from
one preset (``--preset``, default ``demo``; its families are sized to equal parameters).
Then every model is scored the same way on the same held-out dialogues
(``assoclm.duplex.evaluate``): decision, listen and interrupt-yield accuracy, user-end
recall, turn-taking precision, model-turn bits per byte, and memory recall of updated and
untouched facts (docs/ARCHITECTURE.md, "Full-duplex event protocol"; the metrics are
defined in ``assoclm.duplex.metrics``). The goals are stated for the propagator.

Writes a JSON result (``--out``) and a PNG of the metrics beside it.
"""

from __future__ import annotations

import argparse
import sys
import time

from assoclm.bench.common import apply_quick, name_list, require_positive, write_result
from assoclm.bench.lm import add_run_flags, train_run
from assoclm.bench.render import decision_rule_line, listed_targets, machine_line, pct, with_targets
from assoclm.data import DataError
from assoclm.duplex.metrics import GOALS, SEED_REPORTED
from assoclm.io import provenance, save_figure_atomic
from assoclm.train.loop import TrainError
from assoclm.train.presets import PRESETS

DEFAULT_OUT = "benchmarks/results/duplex-cpu.json"
MODELS = ("propagator", "hebbian", "transformer")
CONV_MODELS = ("propagator", "hebbian")  # families with a short convolution option
# (metric key, where it lives in the evaluation result, label) in the order shown
METRICS = (
    ("decision_accuracy", "protocol", "decision"),
    ("listen_accuracy", "protocol", "listen"),
    ("user_end_recall", "protocol", "user-end recall"),
    ("turn_taking_precision", "protocol", "turn-taking precision"),
    ("interrupt_yield_accuracy", "protocol", "interrupt yield"),
    ("memory_recall_updated", "memory_recall", "recall, updated facts"),
    ("memory_recall_untouched", "memory_recall", "recall, untouched facts"),
)


def metric_values(evaluation: dict) -> dict[str, float | None]:
    """``{metric: fraction or None}`` from an ``evaluate_duplex`` result (None: no cases)."""
    out = {}
    for key, where, _ in METRICS:
        entry = (evaluation.get(where) or {}).get(key) or {}
        out[key] = entry.get("value") if entry.get("total", 1) else None
    bpb = (evaluation.get("protocol") or {}).get("model_bpb") or {}
    out["model_bpb"] = bpb.get("value")
    return out


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    # taken first: the commit the run started from, before anything else changes
    prov = provenance("assoclm.cli", ["bench", "duplex", *argv], args.device)
    start = time.perf_counter()
    train_overrides = {"dataset_mode": "duplex_chat", "duplex_mix": args.mix,
                       "eval_probes": args.probes}
    rows = []
    for name in args.models:
        overrides = {"conv_size": args.conv_size} if args.conv_size and name in CONV_MODELS \
            else None
        row, trainer = train_run(name, args, overrides=overrides,
                                 train_overrides=train_overrides)
        evaluation = trainer.last_eval or {}
        row.update({
            "metrics": metric_values(evaluation),
            "protocol": evaluation.get("protocol"),
            "protocol_by_source": evaluation.get("protocol_by_source"),
            "end_margin": evaluation.get("end_margin"),
            "memory_recall": evaluation.get("memory_recall"),
            "examples": evaluation.get("examples", []),
            "held_out_dialogues": len(trainer.val_docs),
        })
        rows.append(row)
        shown = ", ".join(f"{label} {pct(row['metrics'][key])}" for key, _, label in METRICS)
        print(f"{name}: {row['parameters']:,} parameters, {row['tokens']:,} tokens: {shown}")

    return {
        "suite": "duplex",
        "provenance": prov,
        "config": {"preset": args.preset, "tokens": args.tokens, "mix": args.mix or "default",
                   "data": args.data, "conv_size": args.conv_size, "probes": args.probes,
                   "eval_tokens": args.eval_tokens, "seed": args.seed},
        "rows": rows,
        "goals": GOALS,
        "seed_reported": SEED_REPORTED,
        "targets": [] if args.quick else targets(rows, GOALS),
        "elapsed_s": time.perf_counter() - start,
    }


def targets(rows: list[dict], goals: dict[str, float]) -> list[dict]:
    """The goals, measured on the propagator row (when it ran)."""
    row = next((r for r in rows if r["model"] == "propagator"), None)
    if row is None:
        return []
    out = []
    for key, goal in goals.items():
        value = row["metrics"].get(key)
        if value is not None:
            out.append({"name": f"propagator duplex {key.replace('_', ' ')}",
                        "goal": f">= {goal}", "measured": value, "met": value >= goal})
    return out


def render(result: dict) -> str:
    """A markdown table: one row per metric, one column per model, and the goal; then how
    the models were trained and scored, and the targets."""
    rows, goals = result["rows"], result["goals"]
    lines = ["| metric | " + " | ".join(r["model"] for r in rows) + " | goal |",
             "|---|" + "---|" * (len(rows) + 1)]
    for key, _, label in METRICS:
        goal = goals.get(key)
        lines.append(f"| {label} | " + " | ".join(pct(r["metrics"][key]) for r in rows)
                     + f" | {'≥ ' + pct(goal) if goal is not None else ''} |")
    lines.append("| model-turn bits/byte | " + " | ".join(
        "n/a" if r["metrics"]["model_bpb"] is None else f"{r['metrics']['model_bpb']:.3f}"
        for r in rows) + " | |")
    lines.append("| parameters | " + " | ".join(f"{r['parameters'] / 1e6:.2f}M" for r in rows)
                 + " | |")
    cfg = result["config"]
    conv = (f"; propagator and hebbian with a short convolution of size {cfg['conv_size']}"
            if cfg["conv_size"] else "")
    lines += ["", f"`{cfg['preset']}` preset of each family, {cfg['tokens']:,} training tokens "
                  f"each on the {cfg['mix']} dialogue mix{conv}; "
                  f"{rows[0]['held_out_dialogues']} held-out dialogues, "
                  f"{cfg['probes']} memory questions at most. "
                  f"{decision_rule_line(rows[0]['end_margin'])} "
                  f"{machine_line(result['provenance'])}."]
    return with_targets(lines, result["targets"])


# the targets the run judged, as it wrote them
stated_targets = listed_targets


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, goals = result["rows"], result["goals"]
    fig, ax = plt.subplots(figsize=(8.0, 3.8))
    width = 0.8 / max(len(rows), 1)
    xs = range(len(METRICS))
    for i, row in enumerate(rows):
        values = [100 * (row["metrics"][key] or 0.0) for key, _, _ in METRICS]
        ax.bar([x + (i - (len(rows) - 1) / 2) * width for x in xs], values, width,
               label=f"{row['model']} ({row['parameters'] / 1e6:.2f}M)")
    for x, (key, _, _) in zip(xs, METRICS):
        if key in goals:
            ax.plot([x - 0.45, x + 0.45], [100 * goals[key]] * 2, "k--", lw=1)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([label for _, _, label in METRICS], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("held-out %")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    cfg = result["config"]
    ax.set_title(f"assoclm bench duplex: {cfg['preset']} preset, {cfg['tokens']:,} tokens each "
                 f"(dashed: goal) @ {result['provenance']['git_commit'][:12]}", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assoclm bench duplex", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=name_list(MODELS), default=list(MODELS),
                   help=f"comma list (default {','.join(MODELS)})")
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--tokens", type=int, default=1_000_000, help="training tokens per model")
    p.add_argument("--mix", help="dialogue mix, as `assoclm train --duplex-mix` (default: "
                                 "the built-in mix)")
    p.add_argument("--data", help="local dialogue JSONL added to the mix")
    p.add_argument("--conv-size", type=int, default=0,
                   help="propagator/hebbian: short convolution before q, k, v (0: none)")
    p.add_argument("--eval-tokens", type=int, default=1 << 30,
                   help="held-out stream tokens scored (default: all)")
    p.add_argument("--probes", type=int, default=300, help="memory questions asked per model")
    add_run_flags(p, runs="runs/bench-duplex", out=DEFAULT_OUT)
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, preset="tiny", tokens=2048, eval_tokens=2048, probes=4)
    require_positive(parser, args, ("tokens", "eval_tokens", "probes"))
    if args.conv_size == 1 or args.conv_size < 0:
        parser.error(f"--conv-size must be 0 (off) or >= 2; got {args.conv_size}")

    try:
        result = run(args, argv)
    except (ValueError, DataError, TrainError) as exc:
        parser.error(str(exc))
    write_result(result, args.out, None if args.no_plot else plot)
    return result


if __name__ == "__main__":
    main()
