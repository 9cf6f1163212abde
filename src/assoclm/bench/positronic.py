"""Positronic's ablation report: what each component does, and how it compares.

    assoclm bench positronic                     # demo-sized models (CPU: about an hour)
    assoclm bench positronic --quick             # tiny models, a few steps (seconds)

Three models are trained by the same trainer on the same data for the same number of
tokens, with configs from one preset (``--preset``, default ``demo``, whose families are
sized to equal parameters): the transformer baseline, Positronic, and Positronic with the
traits of ``--traits`` (default: all of them). Then, on a held-out batch:

* **ablation** (the seed's verification table): for each component with an output gate —
  every layer's oscillator block (its gate tanh(g)) and every trait (its zero-initialised
  output weights) — the largest |Δlogit| when that gate is zeroed on a copy of the model.
  JEPA has no gate (it is a training-time loss); zeroing its predictor is listed to show
  that the logits do not move.
* the oscillator gates tanh(g) per layer after training (they start at 0.9);
* parameter counts, by component;
* held-out bits per byte of each model, Positronic against the transformer at equal
  parameters and tokens;
* **self-speculative decoding** with the draft heads against plain greedy decoding, both
  through the KV cache, on held-out prompts: whether the outputs are identical, the
  acceptance rate, tokens per forward call, and the wall-clock speed-up measured side by
  side (interleaved repeats, ratio of medians).

Writes a JSON result (``--out``) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import numpy as np
import torch

from assoclm.bench.common import (
    apply_quick,
    median,
    name_list,
    require_positive,
    time_interleaved,
    write_result,
)
from assoclm.bench.lm import add_run_flags, plot_loss_curves, train_run
from assoclm.bench.render import listed_targets, machine_line, with_targets
from assoclm.data import DataError
from assoclm.io import provenance, save_figure_atomic
from assoclm.models.positronic import TRAITS
from assoclm.train.loop import TrainError
from assoclm.train.presets import PRESETS

DEFAULT_OUT = "benchmarks/results/positronic-cpu.json"


def held_out_batch(val_docs, batch: int, length: int) -> torch.Tensor:
    """[batch, length] token ids cut from the held-out documents read end to end."""
    ids = np.concatenate([np.asarray(d) for d in val_docs])
    need = batch * length
    if len(ids) < need:
        raise ValueError(f"the held-out split has {len(ids)} tokens; the ablation batch needs "
                         f"{need} (lower --ablation-batch or --ablation-len)")
    return torch.as_tensor(ids[:need].astype(np.int64)).view(batch, length)


def gated_components(model) -> dict[str, list[str]]:
    """Component name -> the names of the parameters whose zeroing removes it."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = {f"oscillators.{i}": [f"blocks.{i}.osc.gate"] for i in range(len(model.blocks))}
    groups: dict[str, list] = {}
    if model.post is not None:
        for trait, params in model.post.component_gates().items():
            groups.setdefault(trait, []).extend(params)
        if model.post.jepa is not None:
            groups["jepa"] = list(model.post.jepa.parameters())
    for block in model.blocks:
        if block.ring_traits is not None:
            for trait, params in block.ring_traits.component_gates().items():
                groups.setdefault(trait, []).extend(params)
    out.update({trait: [names[id(p)] for p in params] for trait, params in groups.items()})
    return out


@torch.no_grad()
def ablation(model, batch: torch.Tensor) -> list[dict]:
    """Per gated component: max |Δlogit| over the batch when its gate is zeroed."""
    model.eval()
    base, _ = model(batch)
    rows = []
    for component, params in gated_components(model).items():
        ablated = copy.deepcopy(model)
        named = dict(ablated.named_parameters())
        for name in params:
            named[name].zero_()
        logits, _ = ablated(batch)
        row = {"component": component, "max_abs_dlogit": float((logits - base).abs().max()),
               "parameters": sum(named[n].numel() for n in params)}
        if component.startswith("oscillators."):
            row["gate"] = model.blocks[int(component.split(".")[1])].osc.gate_value
        rows.append(row)
    return rows


def parameter_breakdown(model) -> dict[str, int]:
    """Parameters by component (the tied embedding counted once, as the embedding)."""
    counts: dict[str, int] = {}
    for name, p in model.named_parameters():
        if name.startswith("embed."):
            key = "embedding"
        elif ".attn." in name:
            key = "attention"
        elif ".osc." in name:
            key = "oscillators"
        elif ".ring_traits." in name:
            key = "ring traits"
        elif name.startswith("draft_heads."):
            key = "draft heads"
        elif name.startswith("post."):
            key = "post-stack traits"
        else:
            key = "norms and logit scale"
        counts[key] = counts.get(key, 0) + p.numel()
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


@torch.no_grad()
def greedy(model, prompt: list[int], n: int) -> list[int]:
    """Plain greedy decoding through the KV cache: one forward per token."""
    logits, state = model(torch.tensor([prompt]))
    out = []
    for _ in range(n):
        token = logits[:, -1].argmax(-1)
        out.append(int(token))
        logits, state = model(token[:, None], state)
    return out


def speculative(model, prompts: list[list[int]], new_tokens: int, repeats: int) -> dict:
    """Speculative vs greedy on each prompt: identical output, acceptance, speed-up."""
    model.eval()
    per_prompt, identical = [], True
    drafted = accepted = calls = produced = 0
    for prompt in prompts:
        want = greedy(model, prompt, new_tokens)
        got, stats = model.speculative_generate(prompt, new_tokens)
        identical &= got == want
        drafted += stats["drafted"]
        accepted += stats["accepted"]
        calls += stats["forward_calls"]
        produced += len(got)
        times = time_interleaved({
            "greedy": lambda p=prompt: greedy(model, p, new_tokens),
            "speculative": lambda p=prompt: model.speculative_generate(p, new_tokens),
        }, repeats=repeats)
        per_prompt.append({"prompt_tokens": len(prompt), "identical": got == want,
                           "acceptance": stats["accepted"] / max(stats["drafted"], 1),
                           "forward_calls": stats["forward_calls"],
                           "greedy_s": median(times["greedy"]),
                           "speculative_s": median(times["speculative"])})
    speedups = [r["greedy_s"] / r["speculative_s"] for r in per_prompt]
    return {"draft_heads": model.config.mtp_heads, "new_tokens": new_tokens,
            "prompts": per_prompt, "identical": identical,
            "acceptance": accepted / max(drafted, 1),
            "tokens_per_forward": produced / max(calls, 1),
            "speedup_median": median(speedups)}


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    prov = provenance("assoclm.cli", ["bench", "positronic", *argv], args.device)
    start = time.perf_counter()
    runs = [("transformer", "transformer", {}), ("positronic", "positronic", {})]
    if args.traits:
        runs.append(("positronic", "positronic+traits", {"traits": list(args.traits)}))
    rows, models, val_docs = [], {}, None
    for family, name, overrides in runs:
        row, trainer = train_run(family, args, overrides, name)
        rows.append(row)
        models[name] = trainer.model.eval()
        val_docs = trainer.val_ids
        print(f"{name}: {row['parameters']:,} parameters, {row['tokens']:,} tokens, "
              f"held-out {row['val_bpb']:.4f} bits/byte", flush=True)
    batch = held_out_batch(val_docs, args.ablation_batch, args.ablation_len).to(args.device)
    positronic = {}
    for name, model in models.items():
        if name == "transformer":
            continue
        positronic[name] = {
            "ablation": ablation(model, batch),
            "gates": [b.osc.gate_value for b in model.blocks],
            "parameters": parameter_breakdown(model),
        }
    prompt_ids = batch[:, :args.prompt_len].tolist()[:args.prompts]
    spec = speculative(models["positronic"], prompt_ids, args.new_tokens, args.repeats)
    print(f"speculative decoding: identical {spec['identical']}, acceptance "
          f"{spec['acceptance']:.1%}, {spec['tokens_per_forward']:.2f} tokens per forward, "
          f"speed-up {spec['speedup_median']:.2f}x", flush=True)
    by = {r["model"]: r for r in rows}
    gap = by["positronic"]["val_bpb"] / by["transformer"]["val_bpb"] - 1
    targets = [
        {"name": "speculative decoding output identical to greedy", "goal": "identical",
         "measured": "identical" if spec["identical"] else "different",
         "met": spec["identical"]},
    ]
    return {
        "suite": "positronic",
        "provenance": prov,
        "config": {"preset": args.preset, "tokens": args.tokens, "data": args.data or
                   "shakespeare", "eval_tokens": args.eval_tokens, "seed": args.seed,
                   "traits": list(args.traits), "ablation_batch": list(batch.shape)},
        "rows": rows,
        "positronic": positronic,
        "bpb_relative_to_transformer": gap,
        "speculative": spec,
        "targets": [] if args.quick else targets,
        "elapsed_s": time.perf_counter() - start,
    }


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    plot_loss_curves(axes[0], result["rows"])
    ax = axes[1]
    for name, info in result["positronic"].items():
        ax.plot(range(len(info["gates"])), info["gates"], "o-", label=name)
    ax.axhline(0.9, color="grey", ls=":", label="at initialisation")
    ax.set_xlabel("layer")
    ax.set_ylabel("oscillator gate tanh(g)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[2]
    name = "positronic+traits" if "positronic+traits" in result["positronic"] else "positronic"
    rows = result["positronic"][name]["ablation"]
    floor = 1e-9  # a measured 0 (JEPA, an untrained trait) is drawn at the floor, labelled
    values = [r["max_abs_dlogit"] for r in rows]
    ax.barh([r["component"] for r in rows], [max(v, floor) for v in values])
    for i, v in enumerate(values):
        ax.text(max(v, floor), i, f" {v:.3g}", va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("max |Δlogit| with the gate zeroed")
    ax.set_title(name, fontsize=9)
    spec = result["speculative"]
    fig.suptitle(f"assoclm bench positronic: {result['config']['preset']} preset @ "
                 f"{result['provenance']['git_commit'][:12]}; speculative decoding "
                 f"{spec['acceptance']:.0%} accepted, {spec['speedup_median']:.2f}x", fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)


def render(result: dict) -> str:
    """Markdown tables for docs/POSITRONIC.md (``assoclm bench report``)."""
    rows = result["rows"]
    lines = ["| model | parameters | training tokens | held-out bits/byte | tokens/s (median) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters']:,} | {r['tokens']:,} | "
                     f"{r['val_bpb']:.4f} | {r['tokens_per_s_median']:,.0f} |")
    cfg = result["config"]
    lines += ["", f"Positronic's held-out bits/byte relative to the transformer: "
                  f"**{result['bpb_relative_to_transformer']:+.1%}** ({cfg['preset']} preset, "
                  f"{cfg['data']}, seed {cfg['seed']}). {machine_line(result['provenance'])}.",
              ""]
    for name, info in result["positronic"].items():
        lines += [f"**{name}**: oscillator gates tanh(g) per layer after training "
                  f"(0.9 at initialisation): "
                  + ", ".join(f"{g:.3f}" for g in info["gates"]) + ".", "",
                  "| component | parameters zeroed | max abs Δlogit |", "|---|---|---|"]
        for r in info["ablation"]:
            lines.append(f"| {r['component']} | {r['parameters']:,} | "
                         f"{r['max_abs_dlogit']:.3g} |")
        lines += ["", "Parameters: " + ", ".join(
            f"{k} {v:,}" for k, v in info["parameters"].items()) + ".", ""]
    spec = result["speculative"]
    lines += ["| prompt tokens | identical to greedy | acceptance | forward calls | "
              "speed-up over greedy |", "|---|---|---|---|---|"]
    for p in spec["prompts"]:
        lines.append(f"| {p['prompt_tokens']} | {'yes' if p['identical'] else '**no**'} | "
                     f"{p['acceptance']:.1%} | {p['forward_calls']} | "
                     f"{p['greedy_s'] / p['speculative_s']:.2f}x |")
    lines += ["", f"Self-speculative decoding with {spec['draft_heads']} draft heads, "
                  f"{spec['new_tokens']} new tokens per prompt: acceptance "
                  f"{spec['acceptance']:.1%}, {spec['tokens_per_forward']:.2f} tokens per "
                  f"forward call, median speed-up **{spec['speedup_median']:.2f}x** (greedy and "
                  f"speculative timed in turns on the same machine)."]
    return with_targets(lines, result["targets"])


# the targets the run judged, as it wrote them
stated_targets = listed_targets


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assoclm bench positronic", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(n for n, v in PRESETS.items()
                                              if "positronic" in v[1]), default="demo")
    p.add_argument("--tokens", type=int, default=600_000, help="training tokens per model")
    p.add_argument("--traits", type=lambda t: [] if t == "none" else name_list(TRAITS)(t),
                   default=list(TRAITS),
                   help="traits of the third model, comma-separated, or 'none' (default all)")
    p.add_argument("--eval-tokens", type=int, default=65536, help="held-out tokens scored")
    p.add_argument("--ablation-batch", type=int, default=4)
    p.add_argument("--ablation-len", type=int, default=256)
    p.add_argument("--prompts", type=int, default=4, help="speculative decoding prompts")
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per prompt")
    p.add_argument("--data", help="corpus or local files (default: the preset's, Shakespeare)")
    add_run_flags(p, runs="runs/bench-positronic", out=DEFAULT_OUT)
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, preset="tiny", tokens=2048, eval_tokens=1024,
                    ablation_batch=2, ablation_len=48, prompts=2, prompt_len=8, new_tokens=12,
                    repeats=1)
    require_positive(parser, args, ("tokens", "eval_tokens", "ablation_batch", "ablation_len",
                                    "prompts", "prompt_len", "new_tokens", "repeats"))
    if args.prompt_len > args.ablation_len:
        parser.error(f"--prompt-len {args.prompt_len} must not exceed --ablation-len "
                     f"{args.ablation_len} (prompts are cut from the held-out batch)")

    try:
        result = run(args, argv)
    except (ValueError, DataError, TrainError) as exc:
        parser.error(str(exc))
    write_result(result, args.out, None if args.no_plot else plot)
    return result


if __name__ == "__main__":
    main()
