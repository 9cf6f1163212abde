"""`assoclm eval --task duplex`: protocol metrics and memory recall of a checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from assoclm.checkpoint import CheckpointError
from assoclm.data import DataError
from assoclm.duplex.metrics import (
    format_curve_table,
    format_source_table,
    format_table,
    goal_margin_line,
    plot_turn_taking_curves,
    write_metrics_json,
)
from assoclm.duplex.task import evaluate_run
from assoclm.io import provenance, resolve_device

TASKS = ("duplex",)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="assoclm eval",
        description="Score a checkpoint on held-out data. --task duplex: the full-duplex "
                    "protocol metrics and memory recall on the run's held-out dialogues.",
    )
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint directory")
    p.add_argument("--data", help="dialogue sources to score instead of the run's held-out "
                                  "split, e.g. 'memory:1' or rows.jsonl")
    p.add_argument("--max-tokens", type=int, default=1 << 30,
                   help="cap on scored stream tokens (default: all)")
    p.add_argument("--max-probes", type=int, default=500, help="memory questions asked")
    p.add_argument("--end-margin", type=float, default=None,
                   help="turn-taking rule: [USER_END] when its logit beats [LISTEN] by more "
                        "than this (default: log(1 / listen weight) of the run, as in 'assoclm "
                        "chat'; 0: the larger logit wins)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="JSON path (default: <checkpoint>/eval-duplex.json)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    for name in ("max_tokens", "max_probes", "batch_size", "seq_len"):
        if getattr(args, name) < 1:
            print(f"assoclm eval: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    try:
        device = resolve_device(args.device)
        result = evaluate_run(args.checkpoint, data=args.data, max_tokens=args.max_tokens,
                              max_probes=args.max_probes, end_margin=args.end_margin,
                              batch_size=args.batch_size, seq_len=args.seq_len, device=device)
    except (ValueError, CheckpointError, DataError, KeyError) as exc:
        print(f"assoclm eval: {exc}", file=sys.stderr)
        return 2
    ckpt = Path(result["checkpoint"])
    margin = result["end_margin"]
    out = Path(args.out) if args.out else ckpt / "eval-duplex.json"
    write_metrics_json(out, result, provenance("assoclm.cli", ["eval", *argv], device))
    print(f"turn-taking rule: [USER_END] when its logit beats [LISTEN] by more than "
          f"{margin:.2f} nats")
    print(format_table(result))
    print("By dialogue source:")
    print(format_source_table(result["protocol_by_source"]))
    curves = result["turn_taking_curve"]
    written = [str(out)]
    if curves["all"] is not None:
        print("Turn-taking trade-off: a larger margin takes the turn less often (precision "
              "up, user-end recall down):")
        print(format_curve_table(curves))
        print(goal_margin_line(curves["all"]))
        png = plot_turn_taking_curves(curves, out.with_name(out.stem + "-turn-taking.png"),
                                      margin, title=f"turn-taking trade-off, {ckpt.name}")
        written.append(str(png))
    print("wrote " + " and ".join(written))
    return 0
