"""`assoclm bench eam`: EAM's two stated targets, measured.

1. **Sort within a time budget.** Train the default small EAM (``assoclm eam``'s defaults)
   on sort, length 8, for at most ``--time-budget`` seconds (default 600); target: sequence
   accuracy >= 99 % on held-out examples, decoded in parallel (MaskGIT). The trained model is
   then decoded again at several test-time solver depths, and its residual per solver step is
   recorded (it should shrink across steps on a trained model).
2. **Memory flat in solver depth.** One training step (forward, loss, backward) of the same
   model at solver depths ``--depths`` with ``grad_tail = 1`` (Jacobian-free backprop) and,
   for contrast, with backprop through every step. Peak tensor memory is measured directly
   (``bench.memory.peak_tensor_bytes``; on CUDA also ``max_memory_allocated``) and so is the
   memory autograd saves for backward. Target: peak at 32 steps within 10 % of peak at 8.

Writes benchmarks/results/eam-cpu.json (by default) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from assoclm.bench.common import apply_quick, int_list, require_positive, write_result
from assoclm.bench.memory import peak_tensor_bytes, saved_for_backward_bytes
from assoclm.bench.render import listed_targets, machine_line, with_targets
from assoclm.io import provenance, resolve_device, save_figure_atomic
from assoclm.models.eam import EAMConfig, EAMModel
from assoclm.ops.maskgit import training_mask
from assoclm.train.eam import EAMRun, evaluate, examples, train_eam

DEFAULT_OUT = "benchmarks/results/eam-cpu.json"
SORT_GOAL = 0.99
MEMORY_GOAL = 1.10


def measure_memory(model_config: EAMConfig, run: EAMRun, depths: list[int], batch: int,
                   device: torch.device) -> list[dict]:
    """Peak and saved-for-backward bytes of one training step per (depth, grad_tail)."""
    tokens, maskable = examples(run, batch, np.random.default_rng(0))
    mask = training_mask(maskable, torch.Generator().manual_seed(0))
    tokens, mask = tokens.to(device), mask.to(device)
    inputs = tokens.masked_fill(mask, model_config.mask_id)
    rows = []
    for depth in depths:
        for tail in sorted({1, depth}):
            torch.manual_seed(0)
            config = model_config.replace(solver_steps=depth, grad_tail=tail, tol=0.0)
            model = EAMModel(config).to(device).train()

            def step(model: EAMModel = model) -> None:
                logits, _ = model(inputs)
                F.cross_entropy(logits[mask], tokens[mask]).backward()

            def forward(model: EAMModel = model) -> None:
                model(inputs)

            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
                base = torch.cuda.memory_allocated(device)
            peak = peak_tensor_bytes(step)
            row = {"solver_steps": depth, "grad_tail": tail, "peak_bytes": peak,
                   "parameter_bytes": sum(p.numel() * p.element_size()
                                          for p in model.parameters()),
                   "saved_for_backward_bytes": saved_for_backward_bytes(forward)}
            if device.type == "cuda":
                row["cuda_peak_bytes"] = torch.cuda.max_memory_allocated(device) - base
            rows.append(row)
            model.zero_grad(set_to_none=True)
    return rows


def depth_dial(model: EAMModel, run: EAMRun, depths: list[int], device: torch.device
               ) -> list[dict]:
    """Held-out accuracy and final residual of a trained model at test-time solver depths."""
    tokens, maskable = examples(run, run.eval_examples, np.random.default_rng(run.seed + 10_000))
    rows = []
    for depth in depths:
        probe = run.replace(test_solver_steps=depth)
        ev = evaluate(model, probe, tokens.to(device), maskable.to(device))
        rows.append({"solver_steps": depth, "sequence_accuracy": ev["sequence_accuracy"],
                     "token_accuracy": ev["token_accuracy"],
                     "final_residual": ev["residuals"][-1]})
    return rows


def run_bench(args: argparse.Namespace, argv: list[str]) -> dict:
    device = resolve_device(args.device)
    prov = provenance("assoclm.bench.eam", argv, device)
    start = time.perf_counter()
    model_config = EAMConfig(hidden=args.dim, num_heads=args.heads, solver_steps=args.solver_steps,
                             max_len=2 * args.length + 2)
    run = EAMRun(task="sort", length=args.length, steps=args.steps,
                 eval_every=args.eval_every, eval_examples=args.eval_examples,
                 time_budget=args.time_budget, seed=args.seed)
    result: dict = {"suite": "eam", "what": __doc__.strip().splitlines()[0],
                    "provenance": prov,
                    "config": {"model": model_config.to_dict(), "run": run.to_dict(),
                               "memory_depths": args.depths, "memory_batch": args.batch,
                               "test_depths": args.test_depths}}
    print(f"memory: one training step at solver depths {args.depths}")
    memory = measure_memory(model_config, run, args.depths, args.batch, device)
    for row in memory:
        print(f"  depth {row['solver_steps']:3d} grad_tail {row['grad_tail']:3d}: peak "
              f"{row['peak_bytes'] / 2**20:7.2f} MiB, saved for backward "
              f"{row['saved_for_backward_bytes'] / 2**20:7.2f} MiB")
    result["memory"] = memory
    targets = []
    jfb = {r["solver_steps"]: r["peak_bytes"] for r in memory if r["grad_tail"] == 1}
    lo, hi = min(args.depths), max(args.depths)
    if lo != hi:
        ratio = jfb[hi] / jfb[lo]
        targets.append({"name": f"EAM training peak memory, {hi} vs {lo} solver steps "
                                f"(grad_tail 1)", "goal": f"<= {MEMORY_GOAL:.2f}×",
                        "measured": ratio, "met": ratio <= MEMORY_GOAL})

    budget = f"{run.time_budget:.0f} s" if run.time_budget else f"{run.steps} steps"
    print(f"sort: training the default EAM on sort, length {run.length}, for at most {budget}")
    torch.manual_seed(run.seed)
    fit = train_eam(model_config, run, device=device, progress=not args.no_progress)
    result["sort"] = {"sequence_accuracy": fit.sequence_accuracy,
                      "token_accuracy": fit.token_accuracy, "steps": fit.steps,
                      "elapsed_s": fit.elapsed_s, "parameters": fit.parameters,
                      "residuals": fit.residuals, "energies": fit.energies,
                      "history": [{k: e[k] for k in ("step", "elapsed_s", "sequence_accuracy",
                                                     "token_accuracy")} for e in fit.evals]}
    targets.append({"name": f"EAM sort, length {run.length}: held-out sequence accuracy "
                            f"within {budget} ({device.type})",
                    "goal": f">= {SORT_GOAL}",
                    "measured": fit.sequence_accuracy,
                    "met": fit.sequence_accuracy >= SORT_GOAL})
    print(f"  sequence accuracy {100 * fit.sequence_accuracy:.1f}% after {fit.steps} steps "
          f"({fit.elapsed_s:.0f} s)")
    result["depth_dial"] = depth_dial(fit.model, run, args.test_depths, device)
    for row in result["depth_dial"]:
        print(f"  test solver steps {row['solver_steps']:3d}: sequence accuracy "
              f"{100 * row['sequence_accuracy']:5.1f}%, final residual "
              f"{row['final_residual']:.3g}")
    result["targets"] = targets
    result["elapsed_s"] = time.perf_counter() - start
    return result


def render(result: dict) -> str:
    """Markdown: sort accuracy and final residual per test-time solver depth, how the model
    was trained, peak training memory per solver depth and gradient tail, the targets."""
    sort, cfg = result["sort"], result["config"]
    model, run = cfg["model"], cfg["run"]
    lines = ["| test-time solver steps | sequence accuracy | token accuracy | final residual |",
             "|---|---|---|---|"]
    for r in result["depth_dial"]:
        trained = " (trained)" if r["solver_steps"] == model["solver_steps"] else ""
        lines.append(f"| {r['solver_steps']}{trained} | {100 * r['sequence_accuracy']:.1f} % | "
                     f"{100 * r['token_accuracy']:.1f} % | {r['final_residual']:.3g} |")
    lines += ["", f"Sort, length {run['length']}: {sort['parameters']:,} parameters (dim "
                  f"{model['hidden']}, {model['num_heads']} heads, {model['solver_steps']} "
                  f"solver steps, grad tail {model['grad_tail']}, binding {model['binding']}), "
                  f"{sort['steps']:,} steps of batch {run['batch']} in {sort['elapsed_s']:.0f} s; "
                  f"{run['eval_examples']} held-out examples decoded in "
                  f"{run['decode_steps'] or run['length']} parallel rounds. "
                  f"{machine_line(result['provenance'])}.", "",
              "| solver steps | grad tail | peak tensor memory, one training step | "
              "saved for backward |", "|---|---|---|---|"]
    for r in result["memory"]:
        lines.append(f"| {r['solver_steps']} | {r['grad_tail']} | "
                     f"{r['peak_bytes'] / 2**20:.2f} MiB | "
                     f"{r['saved_for_backward_bytes'] / 2**20:.2f} MiB |")
    lines += ["", f"Batch {cfg['memory_batch']}; parameters "
                  f"({result['memory'][0]['parameter_bytes'] / 2**20:.2f} MiB) not included."]
    return with_targets(lines, result["targets"])


# the targets the run judged, as it wrote them
stated_targets = listed_targets


def plot(result: dict, png) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_d, ax_m) = plt.subplots(1, 3, figsize=(15, 4))
    sort = result["sort"]
    ax_r.semilogy(range(1, len(sort["residuals"]) + 1), sort["residuals"], "o-")
    ax_r.set(xlabel="solver step", ylabel="‖f(z) − z‖ / ‖z‖",
             title="trained model: residual per solver step")
    dial = result["depth_dial"]
    ax_d.plot([r["solver_steps"] for r in dial], [100 * r["sequence_accuracy"] for r in dial],
              "o-")
    ax_d.axvline(result["config"]["model"]["solver_steps"], color="gray", linestyle=":",
                 label="trained depth")
    ax_d.set(xscale="log", xlabel="test-time solver steps", ylabel="sequence accuracy (%)",
             title="sort: accuracy vs test-time depth")
    ax_d.legend()
    mem = result["memory"]
    for label, keep in (("grad_tail = 1 (JFB)", lambda r: r["grad_tail"] == 1),
                        ("backprop through every step",
                         lambda r: r["grad_tail"] == r["solver_steps"])):
        rows = [r for r in mem if keep(r)]
        ax_m.plot([r["solver_steps"] for r in rows], [r["peak_bytes"] / 2**20 for r in rows],
                  "o-", label=label)
    ax_m.set(xlabel="solver steps", ylabel="peak tensor memory (MiB)",
             title="one training step")
    ax_m.legend()
    fig.tight_layout()
    save_figure_atomic(fig, png)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assoclm bench eam", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d, m = EAMRun(), EAMConfig()
    p.add_argument("--time-budget", type=float, default=600.0, help="training seconds (600)")
    p.add_argument("--steps", type=int, default=d.steps, help="most training steps")
    p.add_argument("--length", type=int, default=d.length)
    p.add_argument("--dim", type=int, default=m.hidden)
    p.add_argument("--heads", type=int, default=m.num_heads)
    p.add_argument("--solver-steps", type=int, default=m.solver_steps)
    # evaluation decodes every held-out example: rarely, so the budget goes to training
    p.add_argument("--eval-every", type=int, default=1000, help="default 1000")
    p.add_argument("--eval-examples", type=int, default=d.eval_examples)
    p.add_argument("--depths", type=int_list, default=[8, 16, 32],
                   help="solver depths for the memory measurement (default 8,16,32)")
    p.add_argument("--batch", type=int, default=d.batch, help="memory measurement batch")
    p.add_argument("--test-depths", type=int_list, default=[1, 2, 4, 8, 12, 16, 24, 32],
                   help="test-time solver depths for the trained model")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny settings (seconds)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, time_budget=5.0, steps=60, length=3, dim=32, heads=2,
                    solver_steps=4, eval_every=30, eval_examples=50, depths=[2, 4],
                    batch=8, test_depths=[1, 4])
    require_positive(parser, args, ("steps", "length", "dim", "heads", "solver_steps",
                                    "eval_every", "eval_examples", "batch"))
    if args.time_budget <= 0:
        parser.error(f"--time-budget must be > 0 seconds; got {args.time_budget}")
    try:
        result = run_bench(args, argv)
    except ValueError as exc:
        parser.error(str(exc))
    write_result(result, args.out, None if args.no_plot else plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
