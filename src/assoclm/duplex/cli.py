"""`assoclm eval --task duplex`: protocol metrics and memory recall of a checkpoint."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

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
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    for name in ("max_tokens", "max_probes", "batch_size", "seq_len"):
        if getattr(args, name) < 1:
            print(f"assoclm eval: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2

    from assoclm.bench.common import provenance
    from assoclm.data import DataError
    from assoclm.duplex.evaluate import evaluate_duplex
    from assoclm.duplex.metrics import (
        format_curve_table,
        format_source_table,
        format_table,
        goal_margin_line,
        plot_turn_taking_curves,
        turn_end_margin,
        write_metrics_json,
    )
    from assoclm.io import resolve_device
    from assoclm.train.checkpoint import CheckpointError, load_checkpoint, load_trainer_state
    from assoclm.train.config import TrainConfig
    from assoclm.train.loop import VAL_SEED, load_split, tokenize_split

    try:
        device = resolve_device(args.device)
        model, tokenizer, ckpt = load_checkpoint(args.checkpoint, device)
        saved, _ = load_trainer_state(ckpt)
        config = TrainConfig.from_dict(saved["train_config"])
        if config.dataset_mode != "duplex_chat":
            raise ValueError(f"{ckpt} was trained with --dataset-mode {config.dataset_mode}; "
                             "--task duplex needs a duplex_chat checkpoint")
        if args.data:
            from assoclm.data.dialogues import load_dialogues, mix_sources

            # a memory-only spec needs a count: enough dialogues for --max-probes questions
            only_memory = mix_sources(args.data) == ["memory"]
            dialogues = load_dialogues(args.data, seed=VAL_SEED,
                                       n_memory=args.max_probes if only_memory else None)
        else:
            _, dialogues, _ = load_split(config)
        streams = tokenize_split(config, dialogues, tokenizer, VAL_SEED)
        margin = turn_end_margin(config.listen_weight) if args.end_margin is None \
            else args.end_margin
        if not math.isfinite(margin):
            raise ValueError(f"--end-margin must be a finite number; got {margin}")
    except (ValueError, CheckpointError, DataError, KeyError) as exc:
        print(f"assoclm eval: {exc}", file=sys.stderr)
        return 2
    result = evaluate_duplex(model, tokenizer, streams, dialogues, args.batch_size,
                             args.seq_len, args.max_tokens, max_probes=args.max_probes,
                             end_margin=margin)
    result["dialogues"] = len(dialogues)
    result["checkpoint"] = str(ckpt)
    out = Path(args.out) if args.out else ckpt / "eval-duplex.json"
    write_metrics_json(out, result,
                       provenance("assoclm.cli", ["eval", *(argv or sys.argv[1:])], device))
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
                                      margin, title=f"turn-taking trade-off, {Path(ckpt).name}")
        written.append(str(png))
    print("wrote " + " and ".join(written))
    return 0
