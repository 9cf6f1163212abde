"""Delta-rule op benchmark: forward+backward of the chunked form vs the references.

    python -m assoclm.bench.ops                  # CPU, float32, T = 512, 2048, 8192
    python -m assoclm.bench.ops --device cuda --dtype bfloat16   # adds fla's Triton kernel

All implementations get the same inputs (fla gets them through the gated-delta-rule mapping,
computed outside the timed region) and are timed in turns in one run; the result is medians
and ratios, written as JSON (with the command, commit and machine) and a PNG.

One more case, `products_only`, bounds what the chunked form can reach here: it replays the
batched matrix products and triangular solves that the chunked forward and backward passes
ran (recorded from the op itself, same shapes and layouts, same order) on operands that stay
in cache, and nothing else. An implementation that makes those products one after another
cannot beat it, so recurrent / products_only is the ceiling of the chunked speed-up here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from assoclm.bench.common import median, time_interleaved, write_result
from assoclm.bench.fla_peer import fla_chunk_kernel, fla_naive
from assoclm.bench.render import commit
from assoclm.io import provenance, save_figure_atomic
from assoclm.ops.delta_rule import delta_rule_chunked, delta_rule_recurrent
from assoclm.ops.delta_rule.gated import to_gated_args

DEFAULT_OUT = "benchmarks/results/ops-cpu.json"
# The configuration the targets are stated for.
TARGET_SHAPE = {"batch": 4, "heads": 4, "key_dim": 64, "value_dim": 64, "T": 2048}
TARGET_SPEEDUP_VS_RECURRENT = 20.0
TARGET_RATIO_VS_FLA_NAIVE = 1.0


def make_inputs(B: int, T: int, H: int, K: int, V: int, device, dtype, seed: int = 0) -> dict:
    """Random delta-rule inputs with normalised keys, β in (0.05, 1), α in (0.9, 1)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=g)
    k = F.normalize(torch.randn(B, T, H, K, generator=g), dim=-1)
    v = torch.randn(B, T, H, V, generator=g)
    beta = torch.rand(B, T, H, generator=g) * 0.95 + 0.05
    decay = 1 - torch.rand(B, T, H, generator=g) * 0.1
    cast = {"q": q, "k": k, "v": v, "beta": beta, "decay": decay}
    return {n: t.to(device=device, dtype=dtype) for n, t in cast.items()}


def _fwd_bwd(fn: Callable, leaves: dict, grads: tuple) -> Callable[[], None]:
    """A closure running fn(**leaves) forward and backward with fixed output gradients."""

    def run() -> None:
        for t in leaves.values():
            t.grad = None
        o, S = fn(**leaves)
        torch.autograd.backward([o, S], [grads[0].to(o.dtype), grads[1].to(S.dtype)])

    return run


_aten = torch.ops.aten
# The arithmetic of a chunked pass: matrix products and triangular solves.
PRODUCT_OPS = frozenset({_aten.mm, _aten.addmm, _aten.bmm, _aten.baddbmm, _aten.baddbmm_,
                         _aten.linalg_solve_triangular})


def _spec(x):
    """An argument as something to rebuild it from: a tensor's shape, strides and dtype
    (the strides keep transposed operands transposed), anything else as it is."""
    if isinstance(x, torch.Tensor):
        return ("tensor", tuple(x.shape), tuple(x.stride()), x.dtype, x.device)
    return x


class _ProductRecorder(TorchDispatchMode):
    """Records every product and solve run under it as (op, arg specs, kwarg specs)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket in PRODUCT_OPS:
            self.calls.append((func, [_spec(a) for a in args],
                               {n: _spec(a) for n, a in kwargs.items()}))
        return func(*args, **kwargs)


def record_products(run: Callable[[], None]) -> list[tuple]:
    """Run `run` once (forward and backward) and return the products and solves it made."""
    recorder = _ProductRecorder()
    with recorder:
        run()
    return recorder.calls


def replay_products(calls: list[tuple]) -> Callable[[], None]:
    """A closure that makes the recorded calls again, in order, and nothing else.

    Operands are allocated once and shared by every call with the same spec in the same
    argument position, so they stay in cache: this is the fastest those products can run,
    with the per-call overhead of eager PyTorch included."""
    buffers: dict = {}

    def operand(spec, slot):
        if not (isinstance(spec, tuple) and spec and spec[0] == "tensor"):
            return spec
        if (spec, slot) not in buffers:
            _, shape, stride, dtype, device = spec
            x = torch.empty_strided(shape, stride, dtype=dtype, device=device)
            # Small values: accumulating products neither overflow nor go denormal.
            buffers[spec, slot] = x.normal_().mul_(0.1)
        return buffers[spec, slot]

    program = [(func, [operand(a, i) for i, a in enumerate(args)],
                {n: operand(a, n) for n, a in kwargs.items()}) for func, args, kwargs in calls]

    def run() -> None:
        for func, args, kwargs in program:
            func(*args, **kwargs)

    return run


def build_cases(inputs: dict, chunk_size: int, with_recurrent: bool, device) -> dict:
    ours = {n: t.clone().requires_grad_() for n, t in inputs.items()}
    B, T, H, _ = inputs["q"].shape
    V = inputs["v"].shape[-1]
    K = inputs["q"].shape[-1]
    gen = torch.Generator().manual_seed(1)
    grads = (torch.randn(B, T, H, V, generator=gen).to(device),
             torch.randn(B, H, K, V, generator=gen).to(device))

    chunked = _fwd_bwd(lambda **kw: delta_rule_chunked(**kw, chunk_size=chunk_size), ours, grads)
    cases = {"chunked": chunked, "products_only": replay_products(record_products(chunked))}
    if with_recurrent:
        cases["recurrent"] = _fwd_bwd(delta_rule_recurrent, ours, grads)

    v_g, beta_g, g = to_gated_args(inputs["v"], inputs["beta"], inputs["decay"])
    gated = {"q": inputs["q"], "k": inputs["k"], "v": v_g, "beta": beta_g, "g": g}
    gated = {n: t.detach().clone().requires_grad_() for n, t in gated.items()}
    naive = fla_naive()
    cases["fla_naive_chunk"] = _fwd_bwd(
        lambda **kw: naive.naive_chunk_gated_delta_rule(
            **kw, chunk_size=chunk_size, scale=1.0, output_final_state=True
        ),
        gated, grads,
    )
    kernel = fla_chunk_kernel() if torch.device(device).type == "cuda" else None
    if kernel is not None:
        cases["fla_triton"] = _fwd_bwd(
            lambda **kw: kernel(**kw, scale=1.0, output_final_state=True), gated, grads
        )
    return cases


def check_agreement(inputs: dict, chunk_size: int) -> float:
    """Relative error of the chunked output against the recurrence on the benchmark inputs."""
    with torch.no_grad():
        o_c, _ = delta_rule_chunked(**inputs, chunk_size=chunk_size)
        o_r, _ = delta_rule_recurrent(**inputs)
    return ((o_c.float() - o_r.float()).norm() / o_r.float().norm()).item()


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    rows = []
    for T in args.lengths:
        inputs = make_inputs(args.batch, T, args.heads, args.key_dim, args.value_dim, device, dtype)
        with_recurrent = T <= args.max_recurrent_len
        cases = build_cases(inputs, args.chunk_size, with_recurrent, device)
        times = time_interleaved(cases, repeats=args.repeats, warmup=args.warmup, device=device)
        med = {name: median(ts) for name, ts in times.items()}
        row = {"T": T, "median_s": med, "times_s": times}
        if with_recurrent:
            row["speedup_vs_recurrent"] = med["recurrent"] / med["chunked"]
            row["ceiling_vs_recurrent"] = med["recurrent"] / med["products_only"]
            row["rel_err_vs_recurrent"] = check_agreement(inputs, args.chunk_size)
        row["ratio_vs_fla_naive_chunk"] = med["chunked"] / med["fla_naive_chunk"]
        if "fla_triton" in med:
            row["ratio_vs_fla_triton"] = med["chunked"] / med["fla_triton"]
        rows.append(row)
        print_row(row)
    result = {
        "suite": "ops",
        "what": "delta rule, forward+backward, median seconds per call; ratios from one run",
        "config": {
            "batch": args.batch, "heads": args.heads, "key_dim": args.key_dim,
            "value_dim": args.value_dim, "chunk_size": args.chunk_size, "dtype": args.dtype,
            "device": str(device), "repeats": args.repeats, "warmup": args.warmup,
            "quick": args.quick,
        },
        "provenance": provenance("assoclm.bench.ops", argv, device),
        "rows": rows,
        "targets": evaluate_targets(args, rows),
    }
    return result


def evaluate_targets(args: argparse.Namespace, rows: list[dict]) -> dict | None:
    """The op's targets, judged only on the configuration they are stated for: a dict
    ``{"at": TARGET_SHAPE, NAME: {"value", "target", "met"}, ...}``, or None elsewhere."""
    shape_ok = all(getattr(args, n) == v for n, v in TARGET_SHAPE.items() if n != "T")
    row = next((r for r in rows if r["T"] == TARGET_SHAPE["T"]), None)
    if args.device != "cpu" or args.dtype != "float32" or not shape_ok or row is None:
        return None
    speedup = row.get("speedup_vs_recurrent")
    ratio = row["ratio_vs_fla_naive_chunk"]
    return {
        "at": TARGET_SHAPE,
        "speedup_vs_recurrent": {"value": speedup, "target": f">= {TARGET_SPEEDUP_VS_RECURRENT}",
                                 "met": speedup is not None
                                 and speedup >= TARGET_SPEEDUP_VS_RECURRENT},
        "ratio_vs_fla_naive_chunk": {"value": ratio, "target": f"<= {TARGET_RATIO_VS_FLA_NAIVE}",
                                     "met": ratio <= TARGET_RATIO_VS_FLA_NAIVE},
    }


def render(result: dict) -> str:
    """A Markdown table of the medians and ratios per sequence length, and how they were
    measured. A ratio is "n/a" at lengths where the per-token loop was not run."""
    cfg, prov = result["config"], result["provenance"]
    names = list(result["rows"][0]["median_s"])
    head = (["T"] + [f"{n} (ms)" for n in names] + ["recurrent / chunked",
            "recurrent / products_only (ceiling)", "chunked / fla naive"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        cells = [str(row["T"])] + [f"{1e3 * row['median_s'][n]:.1f}" for n in names]
        for key in ("speedup_vs_recurrent", "ceiling_vs_recurrent"):
            speed = row.get(key)
            cells.append(f"{speed:.1f}×" if speed is not None else "n/a")
        cells.append(f"{row['ratio_vs_fla_naive_chunk']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    machine = prov["machine"]
    lines.append("")
    lines.append(
        f"Forward + backward, median of {cfg['repeats']} interleaved runs; B={cfg['batch']}, "
        f"H={cfg['heads']}, K={cfg['key_dim']}, V={cfg['value_dim']}, C={cfg['chunk_size']}, "
        f"{cfg['dtype']} on {machine['device']} ({machine['cpu']}, {machine['torch_threads']} "
        f"threads), torch {machine['torch']}, commit {commit(prov)}. "
        f"Command: `{prov['command']}`. Absolute times from this shared machine are "
        "indicative only; the ratios are the result."
    )
    return "\n".join(lines) + "\n"


def stated_targets(result: dict) -> list[dict]:
    """The targets of an ops result (``evaluate_targets``' dict) as rows; none when the run
    was not at the configuration they are stated for."""
    targets = result["targets"]
    if targets is None:
        return []
    where = ", ".join(f"{k}={v}" for k, v in targets["at"].items())
    return [{"name": f"delta-rule op {key.replace('_', ' ')} ({where})", "goal": t["target"],
             "measured": t["value"], "met": t["met"]}
            for key, t in targets.items() if key != "at"]


def print_row(row: dict) -> None:
    med = row["median_s"]
    cells = " | ".join(f"{n} {1e3 * sec:.1f} ms" for n, sec in med.items())
    speed = row.get("speedup_vs_recurrent")
    line = f"T={row['T']:<6} | {cells}"
    if speed is not None:
        line += (f" | recurrent/chunked {speed:.1f}x"
                 f" (ceiling, recurrent/products_only {row['ceiling_vs_recurrent']:.1f}x)")
    line += f" | chunked/fla_naive {row['ratio_vs_fla_naive_chunk']:.3f}"
    if "ratio_vs_fla_triton" in row:
        line += f" | chunked/fla_triton {row['ratio_vs_fla_triton']:.2f}"
    print(line, flush=True)


def plot(result: dict, path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    Ts = [r["T"] for r in rows]
    names = list(rows[0]["median_s"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        pts = [(r["T"], r["median_s"][name]) for r in rows if name in r["median_s"]]
        ax1.plot([p[0] for p in pts], [1e3 * p[1] for p in pts], marker="o", label=name)
    ax1.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="fwd+bwd ms (median)",
            title="delta rule, forward + backward")
    ax1.set_xticks(Ts, [str(t) for t in Ts])
    ax1.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax1.legend()
    ax1.grid(alpha=0.3, which="both")
    width = 0.27
    xs = range(len(Ts))
    sp = [r.get("speedup_vs_recurrent") or 0 for r in rows]
    ceil = [r.get("ceiling_vs_recurrent") or 0 for r in rows]
    fr = [1 / r["ratio_vs_fla_naive_chunk"] for r in rows]
    ax2.bar([x - width for x in xs], sp, width, label="vs recurrent loop")
    if any(ceil):
        ax2.bar(list(xs), ceil, width, label="ceiling vs loop (products only)",
                color="tab:blue", alpha=0.35)
    ax2.bar([x + width for x in xs], fr, width, label="vs fla naive chunk", color="tab:orange")
    ax2.set_xticks(list(xs), [str(t) for t in Ts])
    ax2.axhline(1.0, color="k", lw=0.8)
    if result["targets"]:
        ax2.axhline(TARGET_SPEEDUP_VS_RECURRENT, color="tab:blue", ls="--", lw=1,
                    label=f"target vs loop ({TARGET_SPEEDUP_VS_RECURRENT:g}×, T=2048)")
    ax2.set(xlabel="sequence length T", ylabel="speed-up of chunked (x)", yscale="log",
            title="chunked speed-up, same run")
    ax2.set_ylim(top=max(sp + ceil + fr) * 12)  # room for the legend above the bars
    ax2.legend(loc="upper left")
    cfg = result["config"]
    fig.suptitle(f"B={cfg['batch']} H={cfg['heads']} K={cfg['key_dim']} V={cfg['value_dim']} "
                 f"{cfg['dtype']} on {cfg['device']} @ {result['provenance']['git_commit'][:12]}",
                 fontsize=9)
    save_figure_atomic(fig, path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m assoclm.bench.ops", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--key-dim", type=int, default=64)
    p.add_argument("--value-dim", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=32,
                   help="C for ours and fla's chunked reference (32 is fastest on CPU at K=V=64)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--max-recurrent-len", type=int, default=8192,
                   help="skip the per-token loop above this length")
    p.add_argument("--quick", action="store_true",
                   help="tiny shapes and few repeats (seconds); for tests and smoke runs")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--replot", metavar="JSON",
                   help="redraw the PNG of an existing result file, without timing anything")
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.replot:
        import json
        from pathlib import Path

        src = Path(args.replot)
        if not src.is_file():
            parser.error(f"--replot {src}: no such result file")
        plot(json.loads(src.read_text()), src.with_suffix(".png"))
        print(f"wrote {src.with_suffix('.png')}")
        return {}
    if args.quick:
        args.lengths, args.batch, args.heads = [100, 256], 2, 2
        args.key_dim, args.value_dim, args.repeats, args.warmup = 16, 16, 2, 1
    for name in ("batch", "heads", "key_dim", "value_dim", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if any(t < 1 for t in args.lengths):
        parser.error(f"--lengths must all be >= 1; got {args.lengths}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    print(f"delta rule fwd+bwd: B={args.batch} H={args.heads} K={args.key_dim} "
          f"V={args.value_dim} C={args.chunk_size} {args.dtype} on {args.device}, "
          f"median of {args.repeats}, cases timed in turns", flush=True)
    result = run(args, argv)
    write_result(result, args.out, None if args.no_plot else plot)
    if result["targets"]:
        for name, t in result["targets"].items():
            if name != "at":
                print(f"target {name}: {t['value']:.3g} (want {t['target']}): "
                      f"{'met' if t['met'] else 'NOT met'}")
    return result


if __name__ == "__main__":
    main()
