"""Protocol metrics and memory recall of a model on held-out dialogues.

``evaluate_duplex`` scores the held-out streams token by token with the state carried
(``assoclm.train.evaluate.evaluate`` with a :class:`ProtocolMetrics` accumulator), then asks
every memory probe: the dialogue is fed up to the ``[MODEL]`` token that opens the answering
turn, and the model answers greedily until ``[MODEL_END]``. The answer counts when it
contains the latest value of the fact (``memory_recall``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from assoclm.data.duplex import DuplexStream, build_stream
from assoclm.duplex.metrics import ProtocolMetrics, memory_recall
from assoclm.duplex.protocol import Dialogue
from assoclm.generation import generate
from assoclm.tokenizer import BaseTokenizer
from assoclm.train.evaluate import evaluate, token_byte_lengths


def answer_probes(model: nn.Module, tokenizer: BaseTokenizer, dialogues: Sequence[Dialogue],
                  max_answer_tokens: int = 32, max_probes: int | None = None
                  ) -> tuple[list[str], list[Any]]:
    """Greedy answers to the memory probes of ``dialogues`` (those without probes are skipped).

    Returns ``(answers, probes)``, aligned.
    """
    model_id = tokenizer.control_id("[MODEL]")
    end_id = tokenizer.control_id("[MODEL_END]")
    banned = [i for i in tokenizer.special_ids if i != end_id]
    answers, probes = [], []
    for dialogue in dialogues:
        if not dialogue.probes:
            continue
        stream = build_stream(dialogue, tokenizer)
        opens = np.flatnonzero(stream.input_ids == model_id)
        model_events = [i for i, e in enumerate(dialogue.events) if e.role == "model"]
        for probe in dialogue.probes:
            if max_probes is not None and len(probes) >= max_probes:
                return answers, probes
            turn = model_events.index(probe.event_index)
            prefix = stream.input_ids[: opens[turn] + 1].tolist()
            ids = []
            for token in generate(model, prefix, max_answer_tokens, temperature=0.0,
                                  banned_ids=banned):
                if token == end_id:
                    break
                ids.append(token)
            answers.append(tokenizer.decode(ids, skip_control=True))
            probes.append(probe)
    return answers, probes


def evaluate_duplex(model: nn.Module, tokenizer: BaseTokenizer, streams: Sequence[DuplexStream],
                    dialogues: Sequence[Dialogue], batch_size: int, seq_len: int,
                    max_tokens: int, max_probes: int | None = 200,
                    autocast: contextlib.AbstractContextManager | None = None,
                    byte_lengths: torch.Tensor | None = None) -> dict[str, Any]:
    """Loss, model-turn bits per byte, the protocol metrics and memory recall.

    ``byte_lengths`` (``token_byte_lengths(tokenizer)``) is computed when not given.

    Returns ``{"loss", "bpb", "tokens", "protocol": {...}, "memory_recall": {...}}``.
    """
    if byte_lengths is None:
        byte_lengths = token_byte_lengths(tokenizer)
    metrics = ProtocolMetrics(byte_lengths)
    # Whole dialogues: cutting each to a prefix would score only their first turns.
    result: dict[str, Any] = evaluate(model, streams, byte_lengths, batch_size, seq_len,
                                      max_tokens, autocast, metrics=metrics,
                                      whole_documents=True)
    result["protocol"] = metrics.result()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        answers, probes = answer_probes(model, tokenizer, dialogues, max_probes=max_probes)
    model.train(was_training)
    result["memory_recall"] = memory_recall(answers, probes) if probes else None
    result["examples"] = [{"answer": a, "expected": p.answer, "kind": p.kind}
                          for a, p in list(zip(answers, probes))[:5]]
    return result
