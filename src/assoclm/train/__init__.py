"""Training: the loop, its config and presets, the schedule, evaluation and checkpoints."""

from assoclm.train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from assoclm.train.config import TrainConfig
from assoclm.train.loop import Trainer, TrainError, TrainResult
from assoclm.train.presets import PRESETS, get_preset

__all__ = [
    "PRESETS",
    "CheckpointError",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "Trainer",
    "get_preset",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]
