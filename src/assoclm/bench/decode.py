"""Decoding: per-token latency and memory vs context length, and time to first token.

    assoclm bench decode                 # demo-sized models; propagator to 1M tokens of context
    assoclm bench decode --quick         # tiny models, short contexts (seconds)

- **Per-token latency**: each model reads a context of L random tokens (prefilled in chunks,
  no gradients), then generates one token at a time with ``step``. The Propagator is run
  from 1k to 1M tokens of context; the transformer (same parameters, KV cache, attention
  over the whole context) as far as ``--transformer-max-context`` and the memory limit
  allow. All (model, L) cases are timed in turns in one process; the result is the median
  seconds per token. Targets: the Propagator's latency at 1M within 1.1× of its
  latency at 1k, and transformer / Propagator ≥ 5× at 32k.
- **Memory**: the bytes of state each model holds at each L (``state.nbytes``): constant for
  the Propagator, the KV cache for the transformer. Cache sizes beyond what was run are
  computed (2 · L · layers · d · 4 bytes) and marked so.
- **Time to first token**: for prompts of ``--ttft-lens`` tokens, from an empty state to
  the logits of the first new token (chunked prefill), timed in turns.
"""

from __future__ import annotations

import argparse
import os
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
from assoclm.bench.render import listed_targets, machine_line, with_targets
from assoclm.io import provenance, save_figure_atomic
from assoclm.models import TransformerConfig, build_model
from assoclm.models.sizing import count_parameters
from assoclm.train.presets import PRESETS, get_preset

DEFAULT_OUT = "benchmarks/results/decode-cpu.json"
MODELS = ("propagator", "transformer")
LATENCY_TARGET = {"at": 1_048_576, "vs": 1024, "ratio": 1.1}
RATIO_TARGET = {"at": 32768, "ratio": 5.0}


def kv_bytes(config: dict, length: int) -> int:
    """Bytes of a full float32 KV cache of the transformer `config` for `length` tokens."""
    return TransformerConfig.from_dict(config).kv_cache_bytes(length)


@torch.no_grad()
def prefill(model, length: int, vocab_size: int, chunk: int, snapshots: list[int],
            device: torch.device, seed: int = 0) -> dict[int, object]:
    """Feed `length` random tokens in chunks; return the state after each snapshot length."""
    gen = torch.Generator().manual_seed(seed)
    states, state, done = {}, None, 0
    marks = sorted(s for s in snapshots if s <= length)
    while done < length:
        n = min(chunk, length - done)
        nxt = [m for m in marks if m > done]
        if nxt:
            n = min(n, nxt[0] - done)  # stop exactly at each snapshot
        tokens = torch.randint(0, vocab_size, (1, n), generator=gen).to(device)
        _, state = model(tokens, state)
        done += n
        if done in marks:
            states[done] = state
    return states


def _stepper(model, state, device: torch.device):
    """A closure that decodes one token (greedy) per call, carrying its own state."""
    holder = {"state": state, "token": torch.zeros(1, dtype=torch.long, device=device)}

    @torch.no_grad()
    def one() -> None:
        logits, holder["state"] = model.step(holder["token"], holder["state"])
        holder["token"] = logits.argmax(-1)

    return one


def _ttft(model, length: int, vocab_size: int, chunk: int, device: torch.device):
    tokens = torch.randint(0, vocab_size, (1, length),
                           generator=torch.Generator().manual_seed(1)).to(device)

    @torch.no_grad()
    def first_token() -> None:
        state, logits = None, None
        for lo in range(0, length, chunk):
            logits, state = model(tokens[:, lo:lo + chunk], state)
        logits[:, -1].argmax(-1).item()

    return first_token


def _memory_limit(args) -> int:
    if args.memory_limit_gb:
        return int(args.memory_limit_gb * 2**30)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    # taken first: the commit the run started from, before anything else changes
    prov = provenance("assoclm.cli", ["bench", "decode", *argv], args.device)
    device = torch.device(args.device)
    start = time.perf_counter()
    configs, models, params = {}, {}, {}
    for name in MODELS:
        cfg, _ = get_preset(args.preset, name)
        cfg = {**cfg, "vocab_size": args.vocab_size}
        if name == "transformer":
            cfg["max_context"] = max(max(args.contexts), max(args.ttft_lens)) + 1024
        configs[name] = cfg
        params[name] = count_parameters(name, cfg)
        torch.manual_seed(0)
        models[name] = build_model(name, cfg).to(device).eval()

    limit = _memory_limit(args)
    t_contexts = [L for L in args.contexts if L <= args.transformer_max_context
                  and kv_bytes(configs["transformer"], L) <= limit]
    skipped = [L for L in args.contexts if L not in t_contexts]
    print(f"prefilling: propagator to {max(args.contexts):,} tokens, transformer to "
          f"{max(t_contexts, default=0):,}", flush=True)
    states = {"propagator": prefill(models["propagator"], max(args.contexts), args.vocab_size,
                                    args.prefill_chunk, args.contexts, device)}
    if t_contexts:
        states["transformer"] = prefill(models["transformer"], max(t_contexts), args.vocab_size,
                                        args.prefill_chunk, t_contexts, device)
    cases, state_bytes = {}, {}
    for name, by_len in states.items():
        for L, state in by_len.items():
            cases[(name, L)] = _stepper(models[name], state, device)
            state_bytes[(name, L)] = state.nbytes
    print(f"timing {len(cases)} decode cases in turns ...", flush=True)
    times = time_interleaved({f"{n}@{L}": f for (n, L), f in cases.items()},
                             repeats=args.repeats, warmup=args.warmup, device=device)
    latency = []
    for (name, L) in cases:
        med = median(times[f"{name}@{L}"])
        latency.append({"model": name, "context": L, "seconds_per_token": med,
                        "state_bytes": state_bytes[(name, L)]})
        print(f"{name:12s} context {L:>9,}: {1e3 * med:8.2f} ms/token, state "
              f"{state_bytes[(name, L)]:,} bytes", flush=True)
    del states, cases

    memory = []
    for L in args.contexts:
        memory.append({"context": L, "propagator_state_bytes": next(
            r["state_bytes"] for r in latency if r["model"] == "propagator"),
            "transformer_kv_bytes": next((r["state_bytes"] for r in latency
                                          if r["model"] == "transformer" and r["context"] == L),
                                         kv_bytes(configs["transformer"], L)),
            "transformer_kv_measured": L in t_contexts})

    ttft_cases = {}
    for L in args.ttft_lens:
        for name in MODELS:
            if name == "transformer" and (L > args.transformer_max_context
                                          or kv_bytes(configs[name], L) > limit):
                continue
            ttft_cases[f"{name}@{L}"] = _ttft(models[name], L, args.vocab_size,
                                              args.prefill_chunk, device)
    print(f"timing time-to-first-token for prompts of {args.ttft_lens} tokens ...", flush=True)
    ttft_times = time_interleaved(ttft_cases, repeats=args.ttft_repeats, warmup=0,
                                  device=device)
    ttft = [{"model": k.split("@")[0], "prompt": int(k.split("@")[1]),
             "seconds": median(v)} for k, v in ttft_times.items()]
    for r in ttft:
        print(f"{r['model']:12s} prompt {r['prompt']:>7,}: first token after "
              f"{r['seconds']:.3f}s", flush=True)

    result = {
        "suite": "decode",
        "what": "per-token decode latency (median s/token, batch 1, greedy) after a context "
                "of L tokens; state bytes; time to first token",
        "provenance": prov,
        "config": {"preset": args.preset, "vocab_size": args.vocab_size,
                   "contexts": args.contexts, "ttft_lens": args.ttft_lens,
                   "transformer_max_context": args.transformer_max_context,
                   "transformer_skipped_contexts": skipped, "prefill_chunk": args.prefill_chunk,
                   "repeats": args.repeats, "warmup": args.warmup, "quick": args.quick,
                   "models": {n: {"config": configs[n], "parameters": params[n]}
                              for n in MODELS}},
        "latency": latency,
        "memory": memory,
        "ttft": ttft,
        "targets": [] if args.quick else targets(latency),
        "elapsed_s": time.perf_counter() - start,
    }
    return result


def targets(latency: list[dict]) -> list[dict]:
    """The two latency targets, judged on the cases this run measured (those it did not
    measure are left out)."""
    at = {(r["model"], r["context"]): r["seconds_per_token"] for r in latency}
    out = []
    hi, lo = LATENCY_TARGET["at"], LATENCY_TARGET["vs"]
    if ("propagator", hi) in at and ("propagator", lo) in at:
        ratio = at[("propagator", hi)] / at[("propagator", lo)]
        out.append({"name": f"propagator per-token latency at {hi:,} vs {lo:,} tokens of "
                            "context", "goal": f"<= {LATENCY_TARGET['ratio']}×",
                    "measured": ratio, "met": ratio <= LATENCY_TARGET["ratio"]})
    L = RATIO_TARGET["at"]
    if ("propagator", L) in at and ("transformer", L) in at:
        ratio = at[("transformer", L)] / at[("propagator", L)]
        out.append({"name": f"transformer / propagator per-token latency at {L:,} tokens",
                    "goal": f">= {RATIO_TARGET['ratio']}×", "measured": ratio,
                    "met": ratio >= RATIO_TARGET["ratio"]})
    return out


def render(result: dict) -> str:
    """Markdown: per-token latency and state size per context length, time to first token
    per prompt length ("–" where a model did not run), how it was measured, the targets."""
    at = {(r["model"], r["context"]): r for r in result["latency"]}
    mem = {m["context"]: m for m in result["memory"]}
    lines = ["| context | propagator ms/token | transformer ms/token | transformer / propagator "
             "| propagator state | transformer KV cache |", "|---|---|---|---|---|---|"]
    for L in result["config"]["contexts"]:
        p, t = at.get(("propagator", L)), at.get(("transformer", L))
        ratio = (f"{t['seconds_per_token'] / p['seconds_per_token']:.1f}×" if p and t else "–")
        m = mem[L]
        kv = f"{m['transformer_kv_bytes'] / 2**20:,.1f} MiB" + (
            "" if m["transformer_kv_measured"] else " (computed)")
        p_ms = "–" if p is None else f"{1e3 * p['seconds_per_token']:.2f}"
        t_ms = "–" if t is None else f"{1e3 * t['seconds_per_token']:.2f}"
        lines.append(f"| {L:,} | {p_ms} | {t_ms} | {ratio} | "
                     f"{m['propagator_state_bytes'] / 2**10:,.0f} KiB | {kv} |")
    lines += ["", "| prompt | " + " | ".join(f"{m} time to first token (s)"
                                             for m in MODELS) + " |",
              "|---|---|---|"]
    for L in result["config"]["ttft_lens"]:
        cells = []
        for m in MODELS:
            r = next((x for x in result["ttft"] if x["model"] == m and x["prompt"] == L), None)
            cells.append("–" if r is None else f"{r['seconds']:.3f}")
        lines.append(f"| {L:,} | " + " | ".join(cells) + " |")
    cfg = result["config"]
    params = ", ".join(f"{k} {v['parameters'] / 1e6:.2f}M" for k, v in cfg["models"].items())
    lines += ["", f"Batch 1, greedy, median of {cfg['repeats']} tokens per case, all cases "
                  f"timed in turns; `{cfg['preset']}` preset ({params}). "
                  f"{machine_line(result['provenance'])}."]
    return with_targets(lines, result["targets"])


# the targets the run judged, as it wrote them
stated_targets = listed_targets


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    ax = axes[0]
    for name in MODELS:
        pts = sorted((r["context"], 1e3 * r["seconds_per_token"]) for r in result["latency"]
                     if r["model"] == name)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_ylabel("ms per generated token")
    ax.set_title("decode latency vs context", fontsize=10)
    ax = axes[1]
    mem = result["memory"]
    xs = [m["context"] for m in mem]
    ax.plot(xs, [m["propagator_state_bytes"] for m in mem], marker="o", label="propagator state")
    run_ = [(m["context"], m["transformer_kv_bytes"]) for m in mem if m["transformer_kv_measured"]]
    calc = [(m["context"], m["transformer_kv_bytes"]) for m in mem]
    ax.plot(*zip(*calc), ls="--", color="C1", label="transformer KV cache (computed)")
    if run_:
        ax.plot(*zip(*run_), marker="o", ls="none", color="C1", label="transformer (measured)")
    ax.set_ylabel("bytes of state")
    ax.set_title("memory vs context", fontsize=10)
    ax = axes[2]
    for name in MODELS:
        pts = sorted((r["prompt"], r["seconds"]) for r in result["ttft"] if r["model"] == name)
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_ylabel("seconds to first token")
    ax.set_title("time to first token vs prompt", fontsize=10)
    for a in axes:
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("tokens")
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=8)
    cfg = result["config"]
    fig.suptitle(f"assoclm bench decode: {cfg['preset']} preset on "
                 f"{result['provenance']['machine']['device']} @ "
                 f"{result['provenance']['git_commit'][:12]}", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assoclm bench decode", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    p.add_argument("--contexts", type=int_list,
                   default=[1024, 4096, 16384, 32768, 65536, 262144, 1048576])
    p.add_argument("--transformer-max-context", type=int, default=32768)
    p.add_argument("--memory-limit-gb", type=float,
                   help="largest KV cache to build (default: half the free memory)")
    p.add_argument("--ttft-lens", type=int_list, default=[1024, 4096, 16384])
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--prefill-chunk", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=30, help="timed tokens per case")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--ttft-repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny preset, short contexts")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, preset="tiny", contexts=[64, 256], ttft_lens=[64],
                    vocab_size=64, transformer_max_context=256, prefill_chunk=64, repeats=3,
                    warmup=1, ttft_repeats=1)
    require_positive(parser, args, ("vocab_size", "prefill_chunk", "repeats", "ttft_repeats",
                                    "transformer_max_context"))
    try:
        result = run(args, argv)
    except ValueError as exc:
        parser.error(str(exc))
    write_result(result, args.out, None if args.no_plot else plot)
    return result


if __name__ == "__main__":
    main()
