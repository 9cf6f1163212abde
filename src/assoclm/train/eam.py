"""Training an EAM masked denoiser on copy / reverse / sort and decoding it in parallel
(MaskGIT); the command is `assoclm eam` (``assoclm.cli.eam``).

Every example is ``SEP x_1..x_L SEP y_1..y_L`` (``data.synthetic.digit_task``); the L output
positions are the maskable ones. Each step draws a fresh batch, masks a cosine-schedule
fraction of each example's outputs and takes the cross-entropy at the masked positions.
Each evaluation decodes held-out examples from fully masked outputs in ``decode_steps``
rounds and prints sequence accuracy (every output digit right), token accuracy, the solver
residual per step and the mean Hopfield energy per step. The run directory gets
``metrics.jsonl``, ``model.safetensors`` + ``config.json`` (the model, in the checkpoint
format of ``assoclm.checkpoint``: ``load_model(run_dir)`` reads it back), ``result.json`` and
``residuals.png`` (residual and energy against solver step, one curve per evaluation).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from assoclm.checkpoint import write_model
from assoclm.config import Config, check_choice, check_float, check_int
from assoclm.data.synthetic import DIGIT_TASKS, digit_task
from assoclm.io import save_figure_atomic, write_text_atomic
from assoclm.models.eam import EAMConfig, EAMModel
from assoclm.ops.maskgit import training_mask
from assoclm.train.schedule import learning_rate, param_groups

TASKS = tuple(sorted(DIGIT_TASKS))


@dataclass
class EAMRun(Config):
    """How to train and evaluate; the model's own settings are in ``EAMConfig``."""

    task: str = "sort"
    length: int = 8
    num_digits: int = 10
    steps: int = 6000
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    eval_every: int = 250
    eval_examples: int = 1000
    decode_steps: int | None = None
    test_solver_steps: int | None = None
    time_budget: float | None = None
    stop_at: float | None = None
    amp: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_choice(name, "task", self.task, TASKS)
        check_int(name, "length", self.length, 1)
        check_int(name, "num_digits", self.num_digits, 2)
        for key in ("steps", "batch", "warmup", "eval_every", "eval_examples"):
            check_int(name, key, getattr(self, key), 0 if key == "warmup" else 1)
        for key in ("decode_steps", "test_solver_steps"):
            if getattr(self, key) is not None:
                check_int(name, key, getattr(self, key), 1)
        check_float(name, "lr", self.lr, 0.0, 1.0, low_open=True)
        check_float(name, "weight_decay", self.weight_decay, 0.0, 10.0)
        if self.time_budget is not None:
            check_float(name, "time_budget", self.time_budget, 0.0, math.inf, low_open=True,
                        high_open=True)
        if self.stop_at is not None:
            check_float(name, "stop_at", self.stop_at, 0.0, 1.0, low_open=True)
        check_int(name, "seed", self.seed, 0)

    @property
    def seq_len(self) -> int:
        return 2 * self.length + 2

    @property
    def rounds(self) -> int:
        """MaskGIT decoding rounds (default: one per output position)."""
        return self.decode_steps or self.length


@dataclass
class EAMResult:
    """What a run reached, and its evaluations."""

    sequence_accuracy: float
    token_accuracy: float
    steps: int
    elapsed_s: float
    parameters: int
    residuals: list[float]
    energies: list[float]
    evals: list[dict] = field(default_factory=list)
    model: EAMModel | None = field(default=None, repr=False)


def examples(run: EAMRun, num: int, rng: np.random.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens [N, 2L + 2], maskable [N, 2L + 2] bool): fresh examples; the L output
    positions are maskable."""
    digits = rng.integers(0, run.num_digits, size=(num, run.length))
    tokens = digit_task(digits, run.task, run.num_digits).inputs
    maskable = torch.zeros_like(tokens, dtype=torch.bool)
    maskable[:, run.length + 2:] = True
    return tokens, maskable


@torch.no_grad()
def evaluate(model: EAMModel, run: EAMRun, tokens: torch.Tensor, maskable: torch.Tensor,
             batch: int = 500) -> dict:
    """Decode every example from fully masked outputs; accuracies and solver diagnostics."""
    was_training = model.training
    model.eval()
    right = []
    for lo in range(0, tokens.shape[0], batch):
        x, m = tokens[lo:lo + batch], maskable[lo:lo + batch]
        out = model.decode(x, m, run.rounds, solver_steps=run.test_solver_steps)
        right.append(((out == x) | ~m)[:, run.length + 2:])
    right = torch.cat(right)
    probe = tokens[:256].masked_fill(maskable[:256], model.config.mask_id)
    _, solve = model.solve(probe, solver_steps=run.test_solver_steps, energies=True)
    model.train(was_training)
    return {
        "sequence_accuracy": right.all(1).float().mean().item(),
        "token_accuracy": right.float().mean().item(),
        "residuals": solve.residuals,
        "energies": solve.energies,
        "converged": solve.converged,
    }


def _line(step: int, loss: float, ev: dict, elapsed: float) -> str:
    r, e = ev["residuals"], ev["energies"]
    return (f"step {step:5d} | loss {loss:.4f} | seq acc {100 * ev['sequence_accuracy']:5.1f}% "
            f"| tok acc {100 * ev['token_accuracy']:5.1f}% | residual {r[0]:.3g} -> {r[-1]:.3g} "
            f"over {len(r)} steps | energy {e[0]:.4g} -> {e[-1]:.4g} | {elapsed:.0f}s")


def train_eam(model_config: EAMConfig, run: EAMRun, out: str | Path | None = None,
              device: torch.device | str = "cpu", progress: bool = True,
              log=print) -> EAMResult:
    """Train, evaluating every ``run.eval_every`` steps and at the end; see the module
    docstring. With ``out`` the run directory gets the metrics, model and plot."""
    if model_config.max_len < run.seq_len:
        raise ValueError(f"model max_len {model_config.max_len} < sequence length "
                         f"{run.seq_len} (2·length + 2)")
    if model_config.vocab_size != run.num_digits + 1:
        raise ValueError(f"model vocab_size {model_config.vocab_size} must be num_digits + 1 "
                         f"= {run.num_digits + 1} (digits and the separator)")
    device = torch.device(device)
    torch.manual_seed(run.seed)
    model = EAMModel(model_config).to(device).train()
    opt = torch.optim.AdamW(param_groups(model, run.weight_decay), lr=run.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(run.seed)
    mask_gen = torch.Generator().manual_seed(run.seed)
    test_tokens, test_maskable = examples(run, run.eval_examples,
                                          np.random.default_rng(run.seed + 10_000))
    test_tokens, test_maskable = test_tokens.to(device), test_maskable.to(device)
    amp = run.amp and device.type == "cuda"
    out = Path(out) if out is not None else None
    metrics = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.steps, desc=f"eam {run.task}", leave=False, dynamic_ncols=True,
                   file=sys.stderr)
    start = time.perf_counter()
    ev: dict = {}
    step, loss_value = 0, float("nan")
    try:
        for step in range(1, run.steps + 1):
            # the cosine follows whichever limit comes first: steps or the time budget
            progress = step / run.steps
            if run.time_budget is not None:
                progress = max(progress, (time.perf_counter() - start) / run.time_budget)
            lr = learning_rate(step - 1, min(progress, 1.0), run.lr, run.warmup, 0.1)
            for g in opt.param_groups:
                g["lr"] = lr
            tokens, maskable = examples(run, run.batch, rng)
            mask = training_mask(maskable, mask_gen)
            tokens, mask = tokens.to(device), mask.to(device)
            with torch.autocast(device.type, torch.bfloat16, enabled=amp):
                logits, _ = model(tokens.masked_fill(mask, model_config.mask_id))
            loss = F.cross_entropy(logits[mask].float(), tokens[mask])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            loss_value = loss.item()
            metrics.append({"kind": "train", "step": step, "loss": loss_value, "lr": lr})
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"loss {loss_value:.3f}")
            elapsed = time.perf_counter() - start
            out_of_time = run.time_budget is not None and elapsed >= run.time_budget
            if step % run.eval_every == 0 or step == run.steps or out_of_time:
                ev = evaluate(model, run, test_tokens, test_maskable)
                elapsed = time.perf_counter() - start
                metrics.append({"kind": "eval", "step": step, "loss": loss_value,
                                "elapsed_s": elapsed, **ev})
                message = _line(step, loss_value, ev, elapsed)
                if bar is not None:
                    bar.write(message)
                else:
                    log(message)
                if run.stop_at is not None and ev["sequence_accuracy"] >= run.stop_at:
                    break
            if out_of_time:
                break
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    evals = [m for m in metrics if m["kind"] == "eval"]
    result = EAMResult(
        sequence_accuracy=ev.get("sequence_accuracy", 0.0),
        token_accuracy=ev.get("token_accuracy", 0.0), steps=step, elapsed_s=elapsed,
        parameters=model.num_parameters(), residuals=ev.get("residuals", []),
        energies=ev.get("energies", []), evals=evals, model=model,
    )
    if out is not None:
        write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))
        write_model(out, model, "eam")
        summary = {"model": model_config.to_dict(), "run": run.to_dict(),
                   **{k: v for k, v in result.__dict__.items() if k not in ("evals", "model")}}
        write_text_atomic(out / "result.json", json.dumps(summary, indent=2) + "\n")
        plot_residuals(evals, out / "residuals.png",
                       f"EAM {run.task} L={run.length}: solver residual and energy")
    return result


def plot_residuals(evals: list[dict], png: str | Path, title: str = "") -> Path | None:
    """Residual (log scale) and Hopfield energy against solver step, one line per evaluation,
    darker = later in training."""
    if not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_e) = plt.subplots(1, 2, figsize=(10, 4))
    cmap = plt.get_cmap("viridis")
    for i, ev in enumerate(evals):
        color = cmap(i / max(1, len(evals) - 1))
        steps = range(1, len(ev["residuals"]) + 1)
        label = f"step {ev['step']}" if i in (0, len(evals) - 1) else None
        ax_r.semilogy(steps, ev["residuals"], color=color, label=label)
        if ev.get("energies"):
            ax_e.plot(range(1, len(ev["energies"]) + 1), ev["energies"], color=color, label=label)
    ax_r.set(xlabel="solver step", ylabel="‖f(z) − z‖ / ‖z‖", title="fixed-point residual")
    ax_e.set(xlabel="solver step", ylabel="mean Hopfield energy", title="energy of queries")
    ax_r.legend()
    ax_e.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path = save_figure_atomic(fig, png)
    plt.close(fig)
    return path
