"""(a) The depth dial and (b) out-of-distribution inputs: a tied recurrent-depth model
against an untied stack with 16× its block parameters.

    python -m assoclm.bench.depth dial            # accuracy against test depth, in distribution
    python -m assoclm.bench.depth ood             # the same models on longer inputs
    python -m assoclm.bench.depth dial --quick    # seconds

Both commands train the same two models from the same seed (so ``ood`` retrains exactly the
models of ``dial``; each result records a checksum of the trained weights to show it):

- **tied**: ``RecurrentDepthLM`` with one block (RMSNorm, SwiGLU, RoPE, QK-norm, GQA) and the
  concatenation adapter that injects the embedding at every iteration; trained, as in
  Geiping et al. 2025, at a depth drawn per step from a log-normal Poisson law of mean
  ``--train-depth`` (capped at ``--max-depth``), with gradients through the last
  ``--backprop-depth`` iterations only.
- **untied**: the same block, ``--untied-layers`` distinct copies applied once each, no
  injection (an ordinary layer stack, sandwich norms included): ``--untied-layers``× the block
  parameters, trained at its one depth.

Task: sorting ``--length`` digits (``data.synthetic.sort_task``; scored on the L output
digits). Sorting needs every output position to rank the input digits, work that a model can
spread over iterations. A chain-following task (follow L edges among distractor chains to the
chain's end) would need depth more directly, but in a trial at this scale the tied model
stayed at chance after 1,500 steps (about four CPU minutes), so it is not offered.

``ood`` tests the same models on ``--test-lengths`` digits: longer inputs (and positions)
than any seen in training, at every test depth.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import torch

from assoclm.bench.common import apply_quick, int_list, require_positive, write_result
from assoclm.bench.render import machine_line
from assoclm.data.synthetic import SyntheticTask, accuracy, sort_task
from assoclm.io import provenance, save_figure_atomic
from assoclm.models.recurrent_depth import RecurrentDepthConfig, RecurrentDepthLM
from assoclm.train.synthetic import fit

DEFAULT_OUT = {"dial": "benchmarks/results/depth-dial-cpu.json",
               "ood": "benchmarks/results/depth-ood-cpu.json"}


def make_task(length: int, num_examples: int, seed: int) -> SyntheticTask:
    """Sort ``length`` digits (``data.synthetic.sort_task``)."""
    return sort_task(num_examples, length, seed=seed)


def model_configs(args: argparse.Namespace, vocab_size: int) -> dict[str, RecurrentDepthConfig]:
    shared = dict(vocab_size=vocab_size, hidden_size=args.width, num_heads=args.heads,
                  num_kv_heads=args.kv_heads, mlp_multiplier=args.mlp_multiplier, qk_norm=True)
    return {
        "tied": RecurrentDepthConfig(**shared, tied=True, injection="adapter",
                                     train_depth=args.train_depth, max_depth=args.max_depth,
                                     backprop_depth=args.backprop_depth),
        "untied": RecurrentDepthConfig(**shared, tied=False, injection="none",
                                       train_depth=args.untied_layers,
                                       max_depth=args.untied_layers),
    }


def checksum(model: torch.nn.Module) -> str:
    """sha256 of the weights in parameter order (first 16 hex digits)."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def depth_accuracy(model: RecurrentDepthLM, task: SyntheticTask, depth: int, batch: int,
                   device: str) -> float:
    """Greedy accuracy on `task` with the model run at `depth` iterations."""
    model.eval()
    preds = []
    for lo in range(0, task.num_examples, batch):
        logits, _ = model(task.inputs[lo:lo + batch].to(device), depth=depth)
        preds.append(logits.argmax(-1).cpu())
    return accuracy(torch.cat(preds), task)


def train_models(args: argparse.Namespace) -> tuple[dict, list[dict]]:
    """Both models trained on ``--length``; returns ({name: model}, per-model rows)."""
    train = make_task(args.length, args.train_examples, args.seed)
    test = make_task(args.length, args.test_examples, args.seed + 1)
    models, rows = {}, []
    for name, config in model_configs(args, train.vocab_size).items():
        torch.manual_seed(args.seed)
        model = RecurrentDepthLM(config)
        result = fit(model, train, test, steps=args.steps, batch_size=args.batch, lr=args.lr,
                     warmup_steps=min(args.warmup, args.steps), eval_every=args.eval_every,
                     seed=args.seed, device=args.device, progress=args.progress,
                     label=f"{name} sort {args.length}")
        block = sum(p.numel() for p in model.blocks[0].parameters())
        rows.append({"model": name, "parameters": model.num_parameters(),
                     "block_parameters": block, "blocks": len(model.blocks),
                     "config": config.to_dict(), "train_s": result.elapsed_s,
                     "steps": result.steps, "final_loss": result.history[-1]["loss"],
                     "history": result.history, "weights_sha256": checksum(model)})
        if args.verbose:
            print(f"{name}: {model.num_parameters():,} parameters, trained in "
                  f"{result.elapsed_s:.0f} s, accuracy at its training depth "
                  f"{result.accuracy:.4f}", flush=True)
        models[name] = model
    return models, rows


def _depths(model_name: str, args: argparse.Namespace) -> list[int]:
    return list(args.test_depth) if model_name == "tied" else [args.untied_layers]


def run(kind: str, args: argparse.Namespace, argv: list[str]) -> dict:
    prov = provenance("assoclm.bench.depth", [kind, *argv], args.device)
    start = time.perf_counter()
    models, model_rows = train_models(args)
    lengths = [args.length] if kind == "dial" else list(args.test_lengths)
    rows = []
    for length in lengths:
        # a test seed no training or dial test set uses
        task = make_task(length, args.test_examples, args.seed + 2)
        for name, model in models.items():
            for depth in _depths(name, args):
                acc = depth_accuracy(model, task, depth, args.eval_batch, args.device)
                rows.append({"model": name, "length": length, "depth": depth,
                             "accuracy": acc})
                if args.verbose:
                    print(f"{name} length {length} depth {depth}: {acc:.4f}", flush=True)
    return {
        "suite": f"depth-{kind}",
        "provenance": prov,
        "config": {k: v for k, v in vars(args).items() if k not in ("verbose", "progress")},
        "models": model_rows,
        "rows": rows,
        "elapsed_s": time.perf_counter() - start,
    }


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = sorted({r["length"] for r in result["rows"]})
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, length in enumerate(lengths):
        color = f"C{i}"
        tied = sorted((r["depth"], r["accuracy"]) for r in result["rows"]
                      if r["model"] == "tied" and r["length"] == length)
        ax.plot(*zip(*tied), marker="o", color=color, label=f"tied, length {length}")
        for r in result["rows"]:
            if r["model"] == "untied" and r["length"] == length:
                ax.axhline(r["accuracy"], color=color, ls="--", lw=1,
                           label=f"untied {r['depth']} layers, length {length}")
    train_depth = result["config"]["train_depth"]
    ax.axvline(train_depth, color="grey", lw=0.6)
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"test depth (iterations; mean training depth {train_depth})")
    ax.set_ylabel("accuracy")
    cfg = result["config"]
    ax.set_title(f"{result['suite']}: sort, trained on {cfg['length']} digits",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle(f"@ {result['provenance']['git_commit'][:12]}", fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)


def _models_line(result: dict) -> str:
    parts = []
    for m in result["models"]:
        parts.append(f"{m['model']}: {m['blocks']} block(s), {m['parameters']:,} parameters "
                     f"({m['block_parameters']:,} per block), trained {m['steps']:,} steps in "
                     f"{m['train_s']:.0f} s")
    return "; ".join(parts)


def _footer(result: dict) -> str:
    cfg = result["config"]
    return (f"Task: sorting digits, trained on {cfg['length']} digits; greedy accuracy on "
            f"{cfg['test_examples']:,} held-out examples. Tied training depth: log-normal "
            f"Poisson, mean {cfg['train_depth']}, capped at {cfg['max_depth']}, backprop "
            f"through the last {cfg['backprop_depth']}. {_models_line(result)}. "
            f"{machine_line(result['provenance'])}.")


def render_dial(result: dict) -> str:
    """Markdown: tied accuracy at each test depth, and the untied model's."""
    rows = result["rows"]
    tied = sorted((r for r in rows if r["model"] == "tied"), key=lambda r: r["depth"])
    params = {m["model"]: m["parameters"] for m in result["models"]}
    lines = ["| model | parameters | " + " | ".join(f"depth {r['depth']}" for r in tied) + " |",
             "|---|---|" + "---|" * len(tied)]
    lines.append(f"| tied (1 block) | {params['tied']:,} | "
                 + " | ".join(f"{r['accuracy']:.1%}" for r in tied) + " |")
    for r in rows:
        if r["model"] == "untied":
            cells = ["–" if t["depth"] != r["depth"] else f"{r['accuracy']:.1%}" for t in tied]
            if r["depth"] not in {t["depth"] for t in tied}:
                cells.append(f"{r['accuracy']:.1%} (depth {r['depth']})")
            lines.append(f"| untied ({r['depth']} blocks) | {params['untied']:,} | "
                         + " | ".join(cells) + " |")
    lines += ["", _footer(result)]
    return "\n".join(lines) + "\n"


def render_ood(result: dict) -> str:
    """Markdown: one row per test length; tied accuracy per depth, then the untied model's."""
    rows = result["rows"]
    depths = sorted({r["depth"] for r in rows if r["model"] == "tied"})
    untied_depth = next(r["depth"] for r in rows if r["model"] == "untied")
    trained = result["config"]["length"]
    head = (["length"] + [f"tied @ {d}" for d in depths] + [f"untied ({untied_depth} blocks)"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for length in sorted({r["length"] for r in rows}):
        at = {(r["model"], r["depth"]): r["accuracy"] for r in rows if r["length"] == length}
        label = f"{length} (trained)" if length == trained else str(length)
        cells = [label] + [f"{at[('tied', d)]:.1%}" for d in depths]
        cells.append(f"{at[('untied', untied_depth)]:.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", _footer(result)]
    return "\n".join(lines) + "\n"


def build_parser(kind: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m assoclm.bench.depth {kind}",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--length", type=int, default=8, help="digits to sort in training")
    if kind == "ood":
        p.add_argument("--test-lengths", type=int_list, default=[8, 10, 12, 16],
                       help="digits to sort in the tests (default 8,10,12,16)")
    p.add_argument("--test-depth", type=int_list, default=[1, 2, 4, 8, 16, 32],
                   help="tied model's test depths (default 1,2,4,8,16,32)")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--mlp-multiplier", type=float, default=4.0)
    p.add_argument("--train-depth", type=int, default=8, help="tied: mean training depth")
    p.add_argument("--max-depth", type=int, default=16, help="tied: cap on a training draw")
    p.add_argument("--backprop-depth", type=int, default=8,
                   help="tied: iterations that get gradients (0: all)")
    p.add_argument("--untied-layers", type=int, default=16)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-batch", type=int, default=500)
    p.add_argument("--train-examples", type=int, default=20000)
    p.add_argument("--test-examples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny models, few steps (seconds)")
    p.add_argument("--out", default=DEFAULT_OUT[kind], help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--verbose", action=argparse.BooleanOptionalAction, default=True)
    return p


def main(kind: str, argv: list[str]) -> int:
    parser = build_parser(kind)
    args = parser.parse_args(argv)
    if args.quick:
        quick = dict(length=2, test_depth=[1, 2, 4], width=16, heads=2, kv_heads=1,
                     mlp_multiplier=2.0, train_depth=2, max_depth=4, backprop_depth=2,
                     untied_layers=4, steps=6, batch=8, warmup=2, eval_every=3,
                     train_examples=64, test_examples=16)
        if kind == "ood":
            quick["test_lengths"] = [2, 3]
        apply_quick(args, argv, **quick)
    require_positive(parser, args, ("length", "width", "heads", "kv_heads", "train_depth",
                                    "max_depth", "untied_layers", "steps", "batch",
                                    "eval_every", "eval_batch", "train_examples",
                                    "test_examples", "threads"))
    torch.set_num_threads(args.threads)
    try:
        # every task and config is built once before training, so a bad one fails at once
        for length in [args.length, *getattr(args, "test_lengths", [])]:
            make_task(length, 1, args.seed)
        model_configs(args, 2)
    except ValueError as exc:
        parser.error(str(exc))
    result = run(kind, args, argv)
    write_result(result, args.out, None if args.no_plot else plot)
    return 0
