"""What the trainer trains on: a task object owns data loading, tokenising and evaluation.

The trainer (:class:`assoclm.train.loop.Trainer`) never asks what it is training on. It asks
its task for the training and held-out documents, the texts a tokenizer is trained on, the
token arrays of a split and the held-out evaluation; a new kind of training data is a new
task, not a new branch in the loop. :class:`LanguageModelTask` is next-token prediction on
text documents; the full-duplex dialogue task lives with the rest of the duplex feature
(``assoclm.duplex.task``), which also keeps the registry of every task a run can name
(``--dataset-mode``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from assoclm.config import Config
from assoclm.data import load_documents
from assoclm.data.splits import split_for_validation
from assoclm.tokenizer import BaseTokenizer
from assoclm.train.config import TrainConfig
from assoclm.train.evaluate import evaluate

DEFAULT_TEXT_DATA = "shakespeare"


class Task(Protocol):
    """What a training run reads and how it is scored.

    Attributes:
        name: the ``--dataset-mode`` that selects it.
        unit: what one document is called in messages ("documents", "dialogues").
        settings: the task's own settings (a Config saved with the run beside the
            TrainConfig), or None when it has none.
    """

    name: str
    unit: str
    settings: Config | None

    @property
    def data_spec(self) -> str:
        """The sources it reads, as a spec string (for logs, plots and summaries)."""
        ...

    def load_split(self, progress: bool) -> tuple[list[Any], list[Any], str]:
        """(training documents, held-out documents, a note for the log or "")."""
        ...

    def texts(self, docs: Sequence[Any]) -> list[str]:
        """The texts of ``docs`` a tokenizer is trained on."""
        ...

    def tokenize(self, docs: Sequence[Any], tokenizer: BaseTokenizer, seed: int) -> list[Any]:
        """Token arrays (or labelled streams) of ``docs``; ``seed`` draws whatever the task
        draws at random when it tokenises (held-out data get a fixed one)."""
        ...

    def evaluate(self, model: nn.Module, tokenizer: BaseTokenizer, held_out: Sequence[Any],
                 held_out_ids: Sequence[Any], byte_lengths: torch.Tensor,
                 autocast: contextlib.AbstractContextManager) -> dict[str, Any]:
        """Held-out metrics: at least ``{"loss", "bpb", "tokens"}``."""
        ...

    def eval_report(self, result: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """(extra fields for the metrics record, extra text for the log line) of an
        evaluation result."""
        ...


class LanguageModelTask:
    """Next-token prediction on text documents (built-in corpora, files, globs, JSONL).

    Held-out loss and bits per byte read every held-out document in order with the model
    state carried (:func:`assoclm.train.evaluate.evaluate`), each cut to an equal share of
    ``eval_tokens``.
    """

    name = "text"
    unit = "documents"
    settings = None

    def __init__(self, config: TrainConfig):
        self.config = config

    @property
    def data_spec(self) -> str:
        """``--data``, or Shakespeare by default."""
        return self.config.data or DEFAULT_TEXT_DATA

    def load_split(self, progress: bool = True) -> tuple[list[Any], list[Any], str]:
        docs = load_documents(self.data_spec, progress=progress)
        return split_for_validation(docs, self.config.val_fraction)

    def texts(self, docs: Sequence[Any]) -> list[str]:
        return [d.text for d in docs]

    def tokenize(self, docs: Sequence[Any], tokenizer: BaseTokenizer, seed: int
                 ) -> list[np.ndarray]:
        return [np.asarray(x, dtype=np.int64)
                for x in tokenizer.encode_batch([d.text for d in docs])]

    def evaluate(self, model: nn.Module, tokenizer: BaseTokenizer, held_out: Sequence[Any],
                 held_out_ids: Sequence[Any], byte_lengths: torch.Tensor,
                 autocast: contextlib.AbstractContextManager) -> dict[str, Any]:
        c = self.config
        return evaluate(model, held_out_ids, byte_lengths, c.batch_size, c.unroll_len,
                        c.eval_tokens, autocast)

    def eval_report(self, result: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {}, ""
