"""The trainer's own settings (the model's live in its config); validated on construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from assoclm.config import Config, check_choice, check_float, check_int
from assoclm.tokenizer import MIN_VOCAB_SIZE

PRECISIONS = ("float32", "bfloat16", "float16")
TOKENIZERS = ("bpe", "byte")


@dataclass
class TrainConfig(Config):
    """How to train: data, batching, optimisation, limits, evaluation and output.

    At least one of ``max_steps``, ``max_tokens`` and ``time_budget`` must be set. Training
    stops at the first limit reached, and the learning rate follows the run's progress: the
    largest fraction done of the limits that are set. A run limited only by steps or tokens
    is deterministic, so ``--resume`` reproduces the uninterrupted run exactly. A run limited
    by the clock is not.

    ``dataset_mode`` names the task (``assoclm.train.task``); a task with settings of its own
    keeps them in a config of its own, saved beside this one.
    """

    model: str = "propagator"
    preset: str | None = None
    data: str | None = None
    dataset_mode: str = "text"
    tokenizer: str = "bpe"
    vocab_size: int = 4096
    val_fraction: float = 0.1
    batch_size: int = 16
    unroll_len: int = 128
    streaming: bool = True
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    precision: str = "float32"
    max_steps: int | None = None
    max_tokens: int | None = None
    time_budget: float | None = None
    eval_every: int = 200
    eval_tokens: int = 32768
    checkpoint_every: int | None = None
    keep_checkpoints: int = 1
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not isinstance(self.dataset_mode, str) or not self.dataset_mode:
            raise ValueError(f"{name}.dataset_mode must name a task; got {self.dataset_mode!r}")
        check_choice(name, "tokenizer", self.tokenizer, TOKENIZERS)
        check_choice(name, "precision", self.precision, PRECISIONS)
        if self.data is not None and (not isinstance(self.data, str) or not self.data.strip()):
            raise ValueError(f"{name}.data must be a non-empty source spec; got {self.data!r}")
        # the BPE's size; below this the control, byte and chat ids do not fit
        check_int(name, "vocab_size", self.vocab_size, MIN_VOCAB_SIZE)
        check_float(name, "val_fraction", self.val_fraction, 0, 1, low_open=True,
                    high_open=True)
        for field in ("batch_size", "unroll_len", "eval_tokens", "keep_checkpoints"):
            check_int(name, field, getattr(self, field))
        for field in ("warmup_steps", "eval_every", "seed"):
            check_int(name, field, getattr(self, field), 0)
        check_float(name, "learning_rate", self.learning_rate, 0, 1, low_open=True)
        check_float(name, "min_lr_ratio", self.min_lr_ratio, 0, 1)
        check_float(name, "weight_decay", self.weight_decay, 0, 10)
        check_float(name, "beta1", self.beta1, 0, 1, high_open=True)
        check_float(name, "beta2", self.beta2, 0, 1, high_open=True)
        check_float(name, "grad_clip", self.grad_clip, 0, math.inf, low_open=True)
        if self.max_steps is None and self.max_tokens is None and self.time_budget is None:
            raise ValueError(
                f"{name}: set at least one limit: max_steps, max_tokens or time_budget "
                "(--max-steps, --max-tokens, --time-budget)"
            )
        if self.max_steps is not None:
            check_int(name, "max_steps", self.max_steps)
        if self.max_tokens is not None:
            check_int(name, "max_tokens", self.max_tokens)
        if self.time_budget is not None:
            check_float(name, "time_budget", self.time_budget, 0, math.inf, low_open=True,
                        high_open=True)
        if self.checkpoint_every is not None:
            check_int(name, "checkpoint_every", self.checkpoint_every)
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"{name}.device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
