"""The duplex task's settings, and reading them back from a saved run."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from assoclm.checkpoint import CheckpointError, load_trainer_state
from assoclm.config import Config, check_float, check_int
from assoclm.duplex.metrics import turn_end_margin
from assoclm.duplex.sources import parse_memory_options


@dataclass
class DuplexConfig(Config):
    """Settings of the duplex task: the dialogue mix, the synthetic interrupts and memory
    dialogues, the loss weights and the memory questions asked per evaluation.

    duplex_mix: dialogue sources with weights, e.g. "chatterbot:1,shakespeare:1,memory:2"
        (None: the default mix); ``TrainConfig.data`` adds local JSONL files to it.
    memory_dialogues: synthetic memory dialogues to generate (None: exactly the memory
        share of the mix).
    memory_options: shape of the memory dialogues, e.g. "num_facts=2,num_updates=1-2".
    p_interrupt: share of model turns cut by a synthetic interrupt.
    listen_weight: loss weight of [LISTEN] targets.
    answer_weight: loss weight of the model's text when it answers a memory question.
    eval_probes: memory questions answered per evaluation.
    """

    duplex_mix: str | None = None
    memory_dialogues: int | None = None
    memory_options: str | None = None
    p_interrupt: float = 0.2
    listen_weight: float = 0.05
    answer_weight: float = 1.0
    eval_probes: int = 200

    def __post_init__(self) -> None:
        name = type(self).__name__
        if self.duplex_mix is not None and (
                not isinstance(self.duplex_mix, str) or not self.duplex_mix.strip()):
            raise ValueError(f"{name}.duplex_mix must be a non-empty source spec; got "
                             f"{self.duplex_mix!r}")
        if self.memory_dialogues is not None:
            check_int(name, "memory_dialogues", self.memory_dialogues)
        if self.memory_options is not None:
            try:
                parse_memory_options(self.memory_options)
            except ValueError as exc:
                raise ValueError(f"{name}.memory_options: {exc}") from None
        check_float(name, "p_interrupt", self.p_interrupt, 0, 1)
        check_float(name, "listen_weight", self.listen_weight, 0, 100)
        check_float(name, "answer_weight", self.answer_weight, 0, 100)
        check_int(name, "eval_probes", self.eval_probes)

    @property
    def end_margin(self) -> float:
        """The turn-taking margin that undoes the listen weight (``turn_end_margin``)."""
        return turn_end_margin(self.listen_weight)


def settings_from_run(run_config: dict[str, Any]) -> DuplexConfig:
    """The duplex settings of a run's flat saved settings (``trainer_state.json``'s
    ``train_config``): its duplex keys, defaults for the ones it lacks (a run of another
    task keeps none or the defaults)."""
    names = {f.name for f in dataclasses.fields(DuplexConfig)}
    return DuplexConfig.from_dict({k: v for k, v in run_config.items() if k in names})


def run_end_margin(checkpoint: str | os.PathLike[str]) -> float:
    """The turn-taking margin that undoes the loss weights a checkpoint was trained with
    (``turn_end_margin`` of its ``--listen-weight``); 0.0 for a checkpoint saved without its
    trainer state (nothing says how it was weighted)."""
    try:
        saved, _ = load_trainer_state(checkpoint)
    except CheckpointError:
        return 0.0
    return settings_from_run(saved["train_config"]).end_margin
