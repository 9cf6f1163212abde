"""The full-duplex dialogue task for the trainer, and the registry of every training task.

:class:`DuplexTask` trains the full-duplex protocol (docs/ARCHITECTURE.md, "Full-duplex
event protocol") on a mix of dialogue sources: it loads and mixes the dialogues
(``assoclm.duplex.sources``), turns each into a labelled token stream with synthetic
interrupts (``assoclm.duplex.stream``) and scores held-out dialogues with the protocol
metrics and memory recall (``assoclm.duplex.evaluate``). Its settings are a
:class:`DuplexConfig`, saved with the run beside the ``TrainConfig``.

:data:`TASKS` maps every ``--dataset-mode`` to its task. It lives here because the duplex
floor is the highest that defines a task; the trainer itself never names one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from assoclm.checkpoint import load_checkpoint, load_trainer_state
from assoclm.config import Config
from assoclm.data.splits import VAL_SEED, split_for_validation
from assoclm.duplex.config import DuplexConfig
from assoclm.duplex.evaluate import evaluate_duplex
from assoclm.duplex.protocol import Dialogue
from assoclm.duplex.sources import (
    DEFAULT_DUPLEX_MIX,
    load_dialogues,
    mix_sources,
    parse_memory_options,
)
from assoclm.duplex.stream import DuplexStream, LossWeights, build_streams
from assoclm.tokenizer import BaseTokenizer
from assoclm.train.config import TrainConfig
from assoclm.train.task import LanguageModelTask, Task


class DuplexTask:
    """The full-duplex protocol on a dialogue mix (``--dataset-mode duplex_chat``)."""

    name = "duplex_chat"
    unit = "dialogues"

    def __init__(self, config: TrainConfig, settings: DuplexConfig | None = None):
        self.config = config
        self.settings = settings if settings is not None else DuplexConfig()

    @property
    def data_spec(self) -> str:
        """The mix, with ``--data``'s local files joining it."""
        spec = self.settings.duplex_mix or DEFAULT_DUPLEX_MIX
        return f"{spec},{self.config.data}" if self.config.data else spec

    def load_split(self, progress: bool = True) -> tuple[list[Any], list[Any], str]:
        s = self.settings
        options = parse_memory_options(s.memory_options) if s.memory_options else None
        dialogues = load_dialogues(self.data_spec, n_memory=s.memory_dialogues, seed=0,
                                   progress=progress, memory_options=options)
        return split_for_validation(dialogues, self.config.val_fraction)

    def texts(self, docs: Sequence[Dialogue]) -> list[str]:
        return [e.text for d in docs for e in d.events]

    def tokenize(self, docs: Sequence[Dialogue], tokenizer: BaseTokenizer, seed: int
                 ) -> list[DuplexStream]:
        """Labelled streams, interrupts synthesised with ``seed``."""
        s = self.settings
        weights = LossWeights(listen=s.listen_weight, answer=s.answer_weight)
        return build_streams(docs, tokenizer, weights, p_interrupt=s.p_interrupt, seed=seed)

    def evaluate(self, model: nn.Module, tokenizer: BaseTokenizer, held_out: Sequence[Any],
                 held_out_ids: Sequence[Any], byte_lengths: torch.Tensor,
                 autocast: contextlib.AbstractContextManager) -> dict[str, Any]:
        c, s = self.config, self.settings
        return evaluate_duplex(model, tokenizer, held_out_ids, held_out, c.batch_size,
                               c.unroll_len, c.eval_tokens, max_probes=s.eval_probes,
                               autocast=autocast, byte_lengths=byte_lengths,
                               end_margin=s.end_margin)

    def eval_report(self, result: dict[str, Any]) -> tuple[dict[str, Any], str]:
        record = {"protocol": result["protocol"], "memory_recall": result["memory_recall"]}
        return record, protocol_line(result)


def protocol_line(result: dict[str, Any]) -> str:
    """decision / listen / turn-taking / yield / recall as short percentages for the log."""
    proto = result["protocol"]
    parts = []
    for key, short in (("decision_accuracy", "decision"), ("listen_accuracy", "listen"),
                       ("turn_taking_precision", "turn-taking"),
                       ("interrupt_yield_accuracy", "yield")):
        value = (proto.get(key) or {}).get("value")
        parts.append(f"{short} {'-' if value is None else f'{100 * value:.1f}%'}")
    recall = result.get("memory_recall") or {}
    value = (recall.get("memory_recall_updated") or {}).get("value")
    parts.append(f"recall(updated) {'-' if value is None else f'{100 * value:.1f}%'}")
    return "  ".join(parts)


# --dataset-mode -> (task class, its settings class or None)
TASKS: dict[str, tuple[type, type[Config] | None]] = {
    "text": (LanguageModelTask, None),
    "duplex_chat": (DuplexTask, DuplexConfig),
}


def task_settings_class(dataset_mode: str) -> type[Config] | None:
    """The settings class of a task, or None for a task without settings.

    Raises:
        ValueError: an unknown dataset mode; the message lists the known ones.
    """
    try:
        return TASKS[dataset_mode][1]
    except KeyError:
        raise ValueError(f"unknown dataset_mode {dataset_mode!r}; choose from "
                         f"{', '.join(TASKS)}") from None


def task_setting_names() -> dict[str, str]:
    """Every task setting's name -> the dataset mode it belongs to."""
    return {f.name: mode for mode, (_, settings) in TASKS.items() if settings is not None
            for f in dataclasses.fields(settings)}


def split_run_config(flat: dict[str, Any]) -> tuple[TrainConfig, Config | None]:
    """(TrainConfig, task settings) from one flat mapping of a run's settings (as presets,
    flags and saved checkpoints hold them).

    Settings of another task than the run's are ignored (a text run saved before the task
    settings had a config of their own carries the duplex defaults); any other unknown key
    is an error.

    Raises:
        ValueError: an unknown key or dataset mode, or a value out of range; the message
            names the field.
    """
    train_names = {f.name for f in dataclasses.fields(TrainConfig)}
    owners = task_setting_names()
    unknown = sorted(k for k in flat if k not in train_names and k not in owners)
    if unknown:
        allowed = sorted(train_names | set(owners))
        raise ValueError(f"unknown setting(s) {unknown}; allowed: {allowed}")
    train = TrainConfig.from_dict({k: v for k, v in flat.items() if k in train_names})
    settings_cls = task_settings_class(train.dataset_mode)
    if settings_cls is None:
        return train, None
    mine = {k: v for k, v in flat.items() if owners.get(k) == train.dataset_mode}
    return train, settings_cls.from_dict(mine)


def build_task(config: TrainConfig, settings: Config | None = None) -> Task:
    """The task ``config.dataset_mode`` names, with its settings (defaults when None).

    Raises:
        ValueError: an unknown dataset mode, or settings of another task.
    """
    settings_cls = task_settings_class(config.dataset_mode)
    task_cls = TASKS[config.dataset_mode][0]
    if settings_cls is None:
        if settings is not None:
            raise ValueError(f"dataset_mode {config.dataset_mode!r} takes no task settings; "
                             f"got {type(settings).__name__}")
        return task_cls(config)
    if settings is not None and not isinstance(settings, settings_cls):
        raise ValueError(f"dataset_mode {config.dataset_mode!r} takes {settings_cls.__name__}; "
                         f"got {type(settings).__name__}")
    return task_cls(config, settings)


def evaluate_run(checkpoint: str | os.PathLike[str], *, data: str | None = None,
                 max_tokens: int = 1 << 30, max_probes: int = 500,
                 end_margin: float | None = None, batch_size: int = 16, seq_len: int = 256,
                 device: torch.device | str = "cpu") -> dict[str, Any]:
    """Score a duplex run's checkpoint: protocol metrics and memory recall on its held-out
    dialogues, or on the dialogues of ``data`` (a mix spec) instead.

    Held-out streams use :data:`~assoclm.data.splits.VAL_SEED` for their interrupts, as
    during training. ``end_margin`` None: the margin that undoes the run's listen weight.

    Returns:
        ``evaluate_duplex``'s result plus ``"dialogues"`` (their number) and
        ``"checkpoint"`` (the checkpoint directory).

    Raises:
        ValueError: not a duplex run, or a margin that is not finite.
        CheckpointError, DataError: the checkpoint or the dialogues cannot be read.
    """
    model, tokenizer, ckpt = load_checkpoint(checkpoint, device)
    saved, _ = load_trainer_state(ckpt)
    config, settings = split_run_config(saved["train_config"])
    if config.dataset_mode != DuplexTask.name:
        raise ValueError(f"{ckpt} was trained with --dataset-mode {config.dataset_mode}; "
                         "--task duplex needs a duplex_chat checkpoint")
    task = build_task(config, settings)
    if data:
        # a memory-only spec needs a count: enough dialogues for max_probes questions
        only_memory = mix_sources(data) == ["memory"]
        dialogues = load_dialogues(data, seed=VAL_SEED,
                                   n_memory=max_probes if only_memory else None)
    else:
        _, dialogues, _ = task.load_split()
    streams = task.tokenize(dialogues, tokenizer, VAL_SEED)
    margin = task.settings.end_margin if end_margin is None else end_margin
    if not math.isfinite(margin):
        raise ValueError(f"--end-margin must be a finite number; got {margin}")
    result = evaluate_duplex(model, tokenizer, streams, dialogues, batch_size, seq_len,
                             max_tokens, max_probes=max_probes, end_margin=margin)
    result["dialogues"] = len(dialogues)
    result["checkpoint"] = str(ckpt)
    return result
