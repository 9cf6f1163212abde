"""Training: the loop (task-agnostic), its config and presets, the schedule, evaluation.

A run is a :class:`Trainer` over a task (``assoclm.train.task``): language modelling here,
the full-duplex dialogue task in ``assoclm.duplex.task``. Checkpoints are
``assoclm.checkpoint``'s.
"""

from assoclm.train.config import TrainConfig
from assoclm.train.loop import Trainer, TrainError, TrainResult
from assoclm.train.presets import PRESETS, get_preset
from assoclm.train.task import LanguageModelTask, Task

__all__ = [
    "PRESETS",
    "LanguageModelTask",
    "Task",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "Trainer",
    "get_preset",
]
