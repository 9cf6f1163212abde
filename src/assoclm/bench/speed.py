"""Training speed vs sequence length: Propagator (both write paths) vs Transformer.

    assoclm bench train-speed                 # demo-sized models, T = 512 … 8192, CPU
    assoclm bench train-speed --quick         # tiny models, short sequences (seconds)

One training step (forward, cross-entropy, backward, clipping, AdamW) on random tokens, for
each sequence length, with every model timed in turns (A B C, B C A, ...) in one process so
that a noisy machine slows them alike. Models come from one preset (default ``demo``), whose
families have equal parameters; the transformer attends over the whole sequence
(``max_context`` = the longest T). The result is tokens per second and, at each length,
the ratio of each model to the transformer.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from assoclm.bench.common import (
    apply_quick,
    int_list,
    median,
    require_positive,
    time_interleaved,
    write_result,
)
from assoclm.bench.render import machine_line
from assoclm.bench.train import make_step
from assoclm.io import provenance, save_figure_atomic
from assoclm.models import build_model
from assoclm.models.sizing import count_parameters
from assoclm.train.presets import PRESETS, get_preset

DEFAULT_OUT = "benchmarks/results/train-speed-cpu.json"
# name -> (model family, config changes)
CASES = {
    "propagator (input)": ("propagator", {"write_from": "input"}),
    "propagator (output)": ("propagator", {"write_from": "output"}),
    "transformer": ("transformer", {}),
}
REFERENCE = "transformer"


def case_configs(preset: str, vocab_size: int, max_len: int) -> dict[str, tuple[str, dict]]:
    out = {}
    for label, (family, changes) in CASES.items():
        cfg, _ = get_preset(preset, family)
        cfg = {**cfg, **changes, "vocab_size": vocab_size}
        if family == "transformer":
            cfg["max_context"] = max_len
        out[label] = (family, cfg)
    return out


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    # taken first: the commit the run started from, before anything else changes
    prov = provenance("assoclm.cli", ["bench", "train-speed", *argv], args.device)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    configs = case_configs(args.preset, args.vocab_size, max(args.seq_lens))
    rows = []
    start = time.perf_counter()
    for T in args.seq_lens:
        cases = {}
        for label, (family, cfg) in configs.items():
            if label == "propagator (output)" and T > args.output_max_len:
                continue  # the per-token scan: minutes per step at long T on a CPU
            torch.manual_seed(0)
            model = build_model(family, cfg).to(device)
            tokens = torch.randint(0, args.vocab_size, (args.batch, T + 1), device=device)
            step = make_step(model, tokens)
            if dtype != torch.float32:
                cases[label] = _autocast(step, device, dtype)
            else:
                cases[label] = step
        times = time_interleaved(cases, repeats=args.repeats, warmup=args.warmup,
                                 device=device)
        n = args.batch * T
        row = {"seq_len": T, "tokens_per_s": {}, "median_s": {}, "vs_transformer": {}}
        for label, ts in times.items():
            row["median_s"][label] = median(ts)
            row["tokens_per_s"][label] = n / median(ts)
        ref = row["tokens_per_s"].get(REFERENCE)
        for label, tps in row["tokens_per_s"].items():
            row["vs_transformer"][label] = tps / ref if ref else None
        rows.append(row)
        print(f"T={T:>6}: " + "  ".join(
            f"{label} {tps:,.0f} tok/s ({row['vs_transformer'][label]:.2f}×)"
            for label, tps in row["tokens_per_s"].items()), flush=True)
    return {
        "suite": "train-speed",
        "what": "training step (fwd + loss + bwd + AdamW) tokens per second; ratios are "
                "vs the transformer at the same T, measured in turns in one process",
        "provenance": prov,
        "config": {"preset": args.preset, "batch": args.batch, "seq_lens": args.seq_lens,
                   "vocab_size": args.vocab_size, "dtype": args.dtype,
                   "repeats": args.repeats, "warmup": args.warmup,
                   "output_max_len": args.output_max_len, "quick": args.quick,
                   "models": {label: {"family": fam, "config": cfg,
                                      "parameters": count_parameters(fam, cfg)}
                              for label, (fam, cfg) in configs.items()}},
        "rows": rows,
        "elapsed_s": time.perf_counter() - start,
    }


def _autocast(step, device: torch.device, dtype: torch.dtype):
    def run_step() -> None:
        with torch.autocast(device.type, dtype=dtype):
            step()
    return run_step


def render(result: dict) -> str:
    """A Markdown table of tokens/s per model and sequence length, with each model's ratio
    to the transformer ("–" where a model did not run at a length)."""
    labels = list(result["config"]["models"])
    lines = ["| T | " + " | ".join(f"{x} tok/s" for x in labels) + " | "
             + " | ".join(f"{x} / transformer" for x in labels if x != "transformer") + " |",
             "|---|" + "---|" * (2 * len(labels) - 1)]
    for r in result["rows"]:
        tps = [f"{r['tokens_per_s'][x]:,.0f}" if x in r["tokens_per_s"] else "–"
               for x in labels]
        ratio = [f"{r['vs_transformer'][x]:.2f}×" if x in r["vs_transformer"] else "–"
                 for x in labels if x != "transformer"]
        lines.append(f"| {r['seq_len']:,} | " + " | ".join(tps + ratio) + " |")
    cfg = result["config"]
    params = ", ".join(f"{k} {v['parameters'] / 1e6:.2f}M" for k, v in cfg["models"].items())
    lines += ["", f"One training step, batch {cfg['batch']}, {cfg['dtype']}, median of "
                  f"{cfg['repeats']} runs taken in turns; parameters: {params}. "
                  f"{machine_line(result['provenance'])}. Tokens/s from this shared machine "
                  "are indicative; the ratios are the result."]
    return "\n".join(lines) + "\n"


def stated_targets(result: dict) -> list[dict]:
    """No targets are stated for training speed against sequence length."""
    return []


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = list(result["config"]["models"])
    for label in labels:
        pts = [(r["seq_len"], r["tokens_per_s"][label], r["vs_transformer"][label])
               for r in result["rows"] if label in r["tokens_per_s"]]
        if not pts:
            continue
        xs, tps, ratio = zip(*pts)
        ax.plot(xs, tps, marker="o", label=label)
        ax2.plot(xs, ratio, marker="o", label=label)
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_xlabel("sequence length T")
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("training tokens/s")
    ax2.set_ylabel("speed relative to the transformer")
    ax2.axhline(1.0, color="gray", lw=0.8)
    cfg = result["config"]
    fig.suptitle(f"assoclm bench train-speed: {cfg['preset']} preset, B={cfg['batch']}, "
                 f"{cfg['dtype']} on {result['provenance']['machine']['device']} @ "
                 f"{result['provenance']['git_commit'][:12]}", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assoclm bench train-speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--seq-lens", type=int_list, default=[512, 1024, 2048, 4096, 8192])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: autocast (for GPUs)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--output-max-len", type=int, default=8192,
                   help="longest T for the per-token scan (write_from=output)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny preset, short sequences")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, preset="tiny", seq_lens=[16, 32], vocab_size=64, repeats=2,
                    warmup=0)
    require_positive(parser, args, ("batch", "vocab_size", "repeats"))
    try:
        result = run(args, argv)
    except ValueError as exc:
        parser.error(str(exc))
    write_result(result, args.out, None if args.no_plot else plot)
    return result


if __name__ == "__main__":
    main()
