"""Train and score a model on a synthetic task (MQAR, fact update, copy/reverse/sort).

The examples are short fixed-length sequences, so there is no streaming and no tokenizer:
each step draws ``batch_size`` training examples, the loss is the cross-entropy at the
scored positions only (``targets != -100``), and the test set is scored by greedy accuracy
(``assoclm.data.synthetic.accuracy``). The model is anything with the model contract
``forward(tokens [B, T]) -> (logits [B, T, V], state)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.data.synthetic import SyntheticTask, accuracy
from assoclm.train.schedule import learning_rate, param_groups


@dataclass
class FitResult:
    """What a fit reached: final test accuracy (overall and per group) and its history."""

    accuracy: float
    group_accuracy: dict[str, float]
    steps: int
    examples_seen: int
    elapsed_s: float
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)


@torch.no_grad()
def score(model: nn.Module, task: SyntheticTask, batch_size: int = 256,
          device: torch.device | str = "cpu") -> tuple[float, dict[str, float]]:
    """Greedy accuracy on `task` (mean over examples of the mean over scored positions),
    overall and for each of the task's groups."""
    was_training = model.training
    model.eval()
    preds = []
    for lo in range(0, task.inputs.shape[0], batch_size):
        out, _ = model(task.inputs[lo:lo + batch_size].to(device))
        preds.append(out.argmax(-1).cpu())
    model.train(was_training)
    predictions = torch.cat(preds)
    overall = accuracy(predictions, task)
    groups = {name: accuracy(predictions, task, group=name) for name in (task.groups or {})}
    return overall, groups


def fit(
    model: nn.Module,
    train: SyntheticTask,
    test: SyntheticTask,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.1,
    warmup_steps: int = 50,
    eval_every: int = 100,
    stop_at: float | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    label: str = "",
) -> FitResult:
    """Train `model` on `train` for at most `steps` AdamW steps; score on `test`.

    The learning rate warms up over ``warmup_steps``, then follows a cosine to a tenth of
    ``lr`` at ``steps``. Every ``eval_every`` steps (and at the end) the test accuracy is
    recorded; with ``stop_at``, training stops as soon as it reaches that accuracy (the
    result then says ``stopped_early``: the budget was not needed).
    """
    if steps < 1 or batch_size < 1 or eval_every < 1:
        raise ValueError(f"steps, batch_size and eval_every must be >= 1; got {steps}, "
                         f"{batch_size}, {eval_every}")
    if train.vocab_size != test.vocab_size or train.inputs.shape[1] != test.inputs.shape[1]:
        raise ValueError("train and test tasks must share vocabulary and sequence length")
    device = torch.device(device)
    model.to(device).train()
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95))
    gen = torch.Generator().manual_seed(seed)
    n = train.inputs.shape[0]
    history: list[dict[str, float]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=label or "fit", leave=False, dynamic_ncols=True)
    start = time.perf_counter()
    acc, groups, step, stopped = 0.0, {}, 0, False
    try:
        for step in range(1, steps + 1):
            for g in opt.param_groups:
                g["lr"] = learning_rate(step - 1, step / steps, lr, warmup_steps, 0.1)
            idx = torch.randint(0, n, (batch_size,), generator=gen)
            x, y = train.inputs[idx].to(device), train.targets[idx].to(device)
            logits, _ = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"loss {loss.item():.3f} acc {acc:.3f}")
            if step % eval_every == 0 or step == steps:
                acc, groups = score(model, test, device=device)
                history.append({"step": step, "loss": float(loss.detach()), "accuracy": acc,
                                "elapsed_s": time.perf_counter() - start, **{
                                    f"accuracy_{k}": v for k, v in groups.items()}})
                if stop_at is not None and acc >= stop_at:
                    stopped = step < steps
                    break
    finally:
        if bar is not None:
            bar.close()
    return FitResult(accuracy=acc, group_accuracy=groups, steps=step,
                     examples_seen=step * batch_size, elapsed_s=time.perf_counter() - start,
                     stopped_early=stopped, history=history)


__all__ = ["FitResult", "fit", "score"]
