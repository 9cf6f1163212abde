"""Optimisation: AdamW parameter groups, and the learning rate (linear warm-up, then cosine
decay over the run's progress)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn


def learning_rate(step: int, progress: float, peak: float, warmup_steps: int,
                  min_ratio: float) -> float:
    """The learning rate for optimizer step ``step`` (0-based) at ``progress`` in [0, 1].

    ``peak · warmup(step) · cosine(progress)``: the warm-up factor rises linearly from
    1/warmup_steps to 1 over the first ``warmup_steps`` steps; the cosine factor falls from 1
    at progress 0 to ``min_ratio`` at progress 1. Progress, not the step count, drives the
    decay, so the same schedule serves runs limited by steps, tokens or wall-clock time.
    """
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    p = min(max(progress, 0.0), 1.0)
    cosine = min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))
    return peak * warm * cosine


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices (and the embedding); not gains, biases or layer scales."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    other = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": other, "weight_decay": 0.0}]
