"""`assoclm eam`: train an EAM masked denoiser on copy / reverse / sort and decode it in
parallel (MaskGIT).

    assoclm eam --task sort --length 8                      # the default small config
    assoclm eam --steps 250 --batch 64 --dim 96 --length 8 --solver-steps 12 --no-amp

The run directory (``--out``) gets ``metrics.jsonl``, the model (``model.safetensors`` +
``config.json``), ``result.json`` and ``residuals.png``; see ``assoclm.train.eam``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from assoclm.io import resolve_device
from assoclm.models.eam import EAMConfig
from assoclm.ops.fixed_point import BACKWARD_MODES
from assoclm.train.eam import TASKS, EAMRun, train_eam


def build_parser() -> argparse.ArgumentParser:
    d, m = EAMRun(), EAMConfig()
    p = argparse.ArgumentParser(
        prog="assoclm eam", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=TASKS, default=d.task)
    p.add_argument("--length", type=int, default=d.length, help="input digits per example")
    p.add_argument("--num-digits", type=int, default=d.num_digits)
    p.add_argument("--steps", type=int, default=d.steps, help="optimizer steps (most)")
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--dim", type=int, default=m.hidden, help="model width")
    p.add_argument("--heads", type=int, default=m.num_heads)
    p.add_argument("--mlp-multiplier", type=float, default=m.mlp_multiplier)
    p.add_argument("--beta", type=float, default=None,
                   help="Hopfield inverse temperature (default 1/sqrt(head dim))")
    p.add_argument("--solver-steps", type=int, default=m.solver_steps)
    p.add_argument("--test-solver-steps", type=int, default=None,
                   help="solver steps at evaluation (default: --solver-steps)")
    p.add_argument("--grad-tail", type=int, default=m.grad_tail,
                   help="solver steps that carry gradient (Jacobian-free backprop)")
    p.add_argument("--backward", choices=BACKWARD_MODES, default=m.backward)
    p.add_argument("--tol", type=float, default=m.tol, help="solver stopping residual")
    p.add_argument("--anderson", type=int, default=m.anderson, help="Anderson memory (0 = off)")
    p.add_argument("--damping", type=float, default=m.damping)
    p.add_argument("--no-binding", action="store_true",
                   help="learned positional embeddings instead of HRR binding")
    p.add_argument("--no-amp", action="store_true", help="no bfloat16 autocast (CUDA only)")
    p.add_argument("--decode-steps", type=int, default=None,
                   help="MaskGIT rounds (default: --length)")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--eval-examples", type=int, default=d.eval_examples)
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop training after this many seconds (then evaluate)")
    p.add_argument("--stop-at", type=float, default=None,
                   help="stop once sequence accuracy reaches this fraction")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", default=None, help="run directory (metrics, model, plot)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def configs_from_args(args: argparse.Namespace) -> tuple[EAMConfig, EAMRun]:
    run = EAMRun(task=args.task, length=args.length, num_digits=args.num_digits,
                 steps=args.steps, batch=args.batch, lr=args.lr, warmup=args.warmup,
                 eval_every=args.eval_every, eval_examples=args.eval_examples,
                 decode_steps=args.decode_steps, test_solver_steps=args.test_solver_steps,
                 time_budget=args.time_budget,
                 stop_at=args.stop_at, amp=not args.no_amp, seed=args.seed)
    model = EAMConfig(vocab_size=args.num_digits + 1, max_len=run.seq_len, hidden=args.dim,
                      num_heads=args.heads, mlp_multiplier=args.mlp_multiplier, beta=args.beta,
                      binding="learned" if args.no_binding else "hrr",
                      solver_steps=args.solver_steps, tol=args.tol, damping=args.damping,
                      anderson=args.anderson, grad_tail=args.grad_tail, backward=args.backward)
    return model, run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        model_config, run = configs_from_args(args)
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and any(out.iterdir()):
        if not args.overwrite:
            parser.error(f"--out {out} already holds a run; pass --overwrite to replace it")
        shutil.rmtree(out)
    chance = 1.0 / run.num_digits
    print(f"EAM on {run.task} (length {run.length}, {run.num_digits} digits; chance: "
          f"{100 * chance:.0f}% per token, {100 * chance ** run.length:.1e}% per sequence) | "
          f"dim {model_config.hidden}, {model_config.num_heads} heads, "
          f"{model_config.solver_steps} solver steps (grad tail {model_config.grad_tail}, "
          f"{model_config.backward}), binding {model_config.binding} | device {device}")
    result = train_eam(model_config, run, out, device)
    print(f"done: {result.steps} steps in {result.elapsed_s:.0f}s, {result.parameters:,} "
          f"parameters | sequence accuracy {100 * result.sequence_accuracy:.1f}%, token "
          f"accuracy {100 * result.token_accuracy:.1f}%")
    if out is not None:
        print(f"run directory: {out} (metrics.jsonl, model.safetensors, residuals.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
