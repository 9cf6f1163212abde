"""Training-step throughput of the Propagator: parallel (write_from="input") vs the seed's
per-token scan (write_from="output"), side by side.

    python -m assoclm.bench.train             # the demo model, B=4, T=512, CPU float32

One training step = forward, masked cross-entropy, backward, gradient clipping and an AdamW
update, on random tokens. Both variants run in turns in one process (A B A B ...); the
result is their median step times, tokens per second and the ratio, written as JSON (with
the command, commit and machine) and a PNG.
"""

from __future__ import annotations

import argparse
import sys

import torch

from assoclm.bench.common import (
    apply_quick,
    median,
    require_positive,
    time_interleaved,
    write_result,
)
from assoclm.bench.render import machine_line
from assoclm.io import provenance, save_figure_atomic
from assoclm.models import build_model
from assoclm.train.presets import get_preset

DEFAULT_OUT = "benchmarks/results/train-cpu.json"
TARGET_RATIO = 10.0  # the parallel form at T = 512 on the demo model, on the CPU
MODES = ("input", "output")


def make_step(model: torch.nn.Module, tokens: torch.Tensor):
    """A closure doing one full training step on ``tokens`` [B, T+1]."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def step() -> None:
        logits, _ = model(inputs)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    device = torch.device(args.device)
    model_cfg, _ = get_preset(args.preset)
    model_cfg = {**model_cfg, "vocab_size": args.vocab_size}
    torch.manual_seed(0)
    tokens = torch.randint(9, args.vocab_size, (args.batch, args.seq_len + 1), device=device)
    cases, params = {}, {}
    for mode in MODES:
        torch.manual_seed(0)
        model = build_model("propagator", {**model_cfg, "write_from": mode}).to(device)
        params[mode] = sum(p.numel() for p in model.parameters())
        cases[mode] = make_step(model, tokens)
    times = time_interleaved(cases, repeats=args.repeats, warmup=args.warmup, device=device)
    n_tokens = args.batch * args.seq_len
    rows = []
    for mode in MODES:
        med = median(times[mode])
        rows.append({"write_from": mode, "median_s": med, "times_s": times[mode],
                     "tokens_per_s": n_tokens / med, "parameters": params[mode]})
        print(f"write_from={mode:<6} step {1e3 * med:8.1f} ms   {n_tokens / med:10,.0f} tokens/s",
              flush=True)
    ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    at_target = args.preset == "demo" and args.seq_len == 512 and device.type == "cpu"
    met = ratio >= TARGET_RATIO
    print(f"parallel / per-token scan: {ratio:.1f}x"
          + (f" (target >= {TARGET_RATIO:g}x: {'met' if met else 'NOT met'})" if at_target else ""))
    return {
        "suite": "train",
        "what": "Propagator training step (fwd + loss + bwd + AdamW), median seconds per step",
        "config": {"preset": args.preset, "model": model_cfg, "batch": args.batch,
                   "seq_len": args.seq_len, "device": str(device), "dtype": "float32",
                   "repeats": args.repeats, "warmup": args.warmup, "quick": args.quick},
        "provenance": provenance("assoclm.bench.train", argv, device),
        "rows": rows,
        "ratio_input_over_output": ratio,
        "target": {"ratio": f">= {TARGET_RATIO:g}", "met": met} if at_target else None,
    }


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [f'write_from="{r["write_from"]}"' for r in rows]
    values = [r["tokens_per_s"] for r in rows]
    bars = ax.barh(names, values, color=["tab:blue", "tab:gray"])
    ax.bar_label(bars, labels=[f"{v:,.0f} tok/s" for v in values], padding=4)
    ax.set_xlim(0, max(values) * 1.35)
    ax.set_xlabel("training tokens per second (higher is better)")
    cfg = result["config"]
    ax.set_title(f"Propagator ({cfg['preset']} preset) training step, B={cfg['batch']} "
                 f"T={cfg['seq_len']}: {result['ratio_input_over_output']:.1f}× "
                 f"@ {result['provenance']['git_commit'][:12]}", fontsize=9)
    save_figure_atomic(fig, path)
    plt.close(fig)


def render(result: dict) -> str:
    """A Markdown table of step time and tokens/s per write path, and how it was measured."""
    cfg = result["config"]
    lines = ["| write_from | training step (ms) | tokens/s | vs per-token scan |",
             "|---|---|---|---|"]
    slowest = min(r["tokens_per_s"] for r in result["rows"])
    for row in result["rows"]:
        lines.append(f"| `{row['write_from']}` | {1e3 * row['median_s']:.0f} | "
                     f"{row['tokens_per_s']:,.0f} | {row['tokens_per_s'] / slowest:.1f}× |")
    lines.append("")
    lines.append(
        f"One training step (forward, loss, backward, AdamW) of the `{cfg['preset']}` model, "
        f"B={cfg['batch']}, T={cfg['seq_len']}, {cfg['dtype']}, median of {cfg['repeats']} "
        f"steps taken in turns. {machine_line(result['provenance'])}."
    )
    return "\n".join(lines) + "\n"


def stated_targets(result: dict) -> list[dict]:
    """The ratio target as a row, when the run was at the configuration it is stated for
    (``result["target"]`` is None elsewhere)."""
    if result["target"] is None:
        return []
    cfg = result["config"]
    return [{"name": f"training step, parallel / per-token writes ({cfg['preset']} preset, "
                     f"T={cfg['seq_len']})",
             "goal": result["target"]["ratio"], "measured": result["ratio_input_over_output"],
             "met": result["target"]["met"]}]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m assoclm.bench.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="demo", help="model preset (default demo)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny model and sequence (seconds)")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, preset="tiny", vocab_size=300, batch=2, seq_len=32, repeats=2,
                    warmup=0)
    require_positive(parser, args, ("batch", "seq_len", "repeats", "vocab_size"))
    try:
        get_preset(args.preset)
    except ValueError as exc:
        parser.error(str(exc))
    result = run(args, argv)
    write_result(result, args.out, None if args.no_plot else plot)
    return result


if __name__ == "__main__":
    main()
