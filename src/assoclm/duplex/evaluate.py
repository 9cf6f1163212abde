"""Protocol metrics and memory recall of a model on held-out dialogues.

``evaluate_duplex`` scores the held-out streams token by token with the state carried
(``assoclm.train.evaluate.evaluate`` with a :class:`ProtocolMetrics` accumulator), then asks
every memory probe: the dialogue is fed up to the ``[MODEL]`` token that opens the answering
turn, and the model answers greedily until ``[MODEL_END]``. The answer counts when it
contains the latest value of the fact (``memory_recall``).

The protocol metrics are also reported per dialogue source (``dialogue_source``): turn ends
are much easier to call in short chat turns than in multi-sentence Shakespeare speeches,
and one total would hide that.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from assoclm.duplex.metrics import ProtocolMetrics, memory_recall
from assoclm.duplex.protocol import Dialogue
from assoclm.duplex.sources import DIALOGUE_SOURCES
from assoclm.duplex.stream import DuplexStream, build_stream
from assoclm.generation import generate
from assoclm.tokenizer import BaseTokenizer
from assoclm.train.evaluate import evaluate, token_byte_lengths, whole_documents_within


def dialogue_source(name: str) -> str:
    """The source of a dialogue from its name: a built-in source ("memory/0/12" -> "memory")
    or "local" (rows from a JSONL file are named by their path and line)."""
    head = name.split("/", 1)[0]
    return head if head in DIALOGUE_SOURCES else "local"


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
                    byte_lengths: torch.Tensor | None = None, end_margin: float = 0.0
                    ) -> dict[str, Any]:
    """Loss, model-turn bits per byte, the protocol metrics and memory recall.

    ``byte_lengths`` (``token_byte_lengths(tokenizer)``) is computed when not given.
    ``end_margin`` is the turn-taking decision rule's margin (``ProtocolMetrics``; the
    result records it).

    Returns ``{"loss", "bpb", "tokens", "protocol": {...}, "protocol_by_source": {source:
    {...}}, "turn_taking_curve": {"all": ..., source: ...}, "memory_recall": {...}}`` (the
    curves are ``ProtocolMetrics.turn_taking_curve``: precision and user-end recall at every
    margin).
    """
    if byte_lengths is None:
        byte_lengths = token_byte_lengths(tokenizer)
    # Whole dialogues (cutting each to a prefix would score only their first turns), taken in
    # order up to max_tokens, then scored source by source: each source has its own
    # accumulator, and the totals are their sums.
    kept = streams[: whole_documents_within([len(s.input_ids) for s in streams], max_tokens)]
    if not kept:
        raise ValueError("no held-out dialogue to evaluate on")
    by_source: dict[str, list[DuplexStream]] = {}
    for stream in kept:
        by_source.setdefault(dialogue_source(stream.name), []).append(stream)
    metrics = ProtocolMetrics(byte_lengths, end_margin)
    per_source: dict[str, dict[str, Any]] = {}
    curves: dict[str, Any] = {}
    nats = weight = text_bits = 0.0
    tokens = n_bytes = 0
    for source in sorted(by_source):
        source_metrics = ProtocolMetrics(byte_lengths, end_margin)
        scored = evaluate(model, by_source[source], byte_lengths, batch_size, seq_len,
                          max_tokens, autocast, metrics=source_metrics, whole_documents=True)
        nats += scored["loss"] * scored["weight"]
        weight += scored["weight"]
        text_bits += scored["bpb"] * scored["bytes"]
        tokens += scored["tokens"]
        n_bytes += scored["bytes"]
        per_source[source] = source_metrics.result()
        curves[source] = source_metrics.turn_taking_curve()
        metrics.merge(source_metrics)
    result: dict[str, Any] = {"loss": nats / max(weight, 1e-12),
                              "bpb": text_bits / max(n_bytes, 1), "tokens": tokens}
    result["protocol"] = metrics.result()
    result["end_margin"] = float(end_margin)
    result["protocol_by_source"] = per_source
    result["turn_taking_curve"] = {"all": metrics.turn_taking_curve(), **curves}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        answers, probes = answer_probes(model, tokenizer, dialogues, max_probes=max_probes)
    model.train(was_training)
    result["memory_recall"] = memory_recall(answers, probes) if probes else None
    result["examples"] = [{"answer": a, "expected": p.answer, "kind": p.kind}
                          for a, p in list(zip(answers, probes))[:5]]
    return result
