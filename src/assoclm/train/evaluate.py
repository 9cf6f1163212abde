"""Held-out loss and bits per byte, reading each document in order with the state carried."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.data.stream import as_pairs
from assoclm.tokenizer import BaseTokenizer


def token_byte_lengths(tokenizer: BaseTokenizer) -> torch.Tensor:
    """[vocab] int64: how many bytes of text each id stands for (0 for control ids)."""
    return torch.tensor(
        [len(tokenizer.token_bytes(i) or b"") for i in range(tokenizer.vocab_size)],
        dtype=torch.int64,
    )


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy in nats (float32), [B, T]."""
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    return nll.view_as(targets)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                         ) -> torch.Tensor:
    """Per-position cross-entropy in nats (float32), times the loss weight ``mask``. [B, T]."""
    return token_nll(logits, targets) * mask


def whole_documents_within(sizes: Sequence[int], max_tokens: int) -> int:
    """How many documents, taken whole and in order, fit in ``max_tokens`` (at least one)."""
    total = 0
    for count, size in enumerate(sizes):
        if count and total + size > max_tokens:
            return count
        total += size
    return len(sizes)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    docs: Sequence[Any],
    byte_lengths: torch.Tensor,
    batch_size: int,
    seq_len: int,
    max_tokens: int,
    autocast: contextlib.AbstractContextManager | None = None,
    metrics: Any | None = None,
    whole_documents: bool = False,
) -> dict[str, float]:
    """Held-out loss and bits per byte, each document read in order with the state carried.

    Each document is cut to an equal share of ``max_tokens`` (so one long document cannot
    dominate); with ``whole_documents``, whole documents are taken in order until
    ``max_tokens`` is reached instead (at least one), so that every part of a dialogue, its
    later turns included, is scored. Documents are grouped ``batch_size`` at a time, and
    each group is read from its first token in windows of ``seq_len`` with the model state
    carried from window to window: the model is scored the way it is used, with everything
    it has read in memory.

    Documents are token arrays (scored on next-token pairs) or labelled documents with
    ``input_ids``/``target_ids``/``weights`` (e.g. duplex streams). ``loss`` is the
    weight-averaged cross-entropy in nats; ``bpb`` = nats / ln 2 / UTF-8 bytes over the
    positions whose target is text (not a control id) with weight > 0, which is comparable
    across tokenizers. ``metrics``, if given, gets ``update(inputs, targets, weights,
    logits)`` for every window (e.g. :class:`assoclm.duplex.metrics.ProtocolMetrics`).

    Returns:
        ``{"loss", "bpb", "tokens", "weight", "bytes"}``: tokens counts the positions with
        weight > 0, weight sums their weights (the loss's denominator) and bytes is the bpb's.
    """
    pairs = [as_pairs(d, i) for i, d in enumerate(docs)]
    pairs = [p for p in pairs if p.size >= 1]
    if not pairs:
        raise ValueError("no held-out document with an (input, target) pair to evaluate on")
    if whole_documents:
        pairs = pairs[: whole_documents_within([p.size for p in pairs], max_tokens)]
        share = max(p.size for p in pairs)
    else:
        share = max(1, max_tokens // len(pairs))
    device = next(model.parameters()).device
    byte_lengths = byte_lengths.to(device)
    was_training = model.training
    model.eval()
    total_nats = total_weight = text_nats = 0.0
    total_tokens = total_bytes = 0
    for start in range(0, len(pairs), batch_size):
        group = pairs[start : start + batch_size]
        width = min(share, max(p.size for p in group))
        inputs = torch.zeros(len(group), width, dtype=torch.int64)
        targets = torch.zeros(len(group), width, dtype=torch.int64)
        weights = torch.zeros(len(group), width, dtype=torch.float32)
        for row, p in enumerate(group):
            n = min(width, p.size)
            # torch.tensor copies: labelled documents may hold read-only arrays
            inputs[row, :n] = torch.tensor(p.inputs[:n])
            targets[row, :n] = torch.tensor(p.targets[:n])
            weights[row, :n] = 1.0 if p.weights is None else torch.tensor(p.weights[:n])
        inputs, targets, weights = inputs.to(device), targets.to(device), weights.to(device)
        state = None
        for t in range(0, width, seq_len):
            x, y, w = (a[:, t : t + seq_len] for a in (inputs, targets, weights))
            with autocast or contextlib.nullcontext():
                logits, state = model(x, state)
            nll = token_nll(logits, y)
            counted = w > 0
            text = counted & (byte_lengths[y] > 0)
            total_nats += float((nll * w).sum())
            total_weight += float(w.sum())
            total_tokens += int(counted.sum())
            text_nats += float(nll[text].sum())
            total_bytes += int(byte_lengths[y][text].sum())
            if metrics is not None:
                metrics.update(x, y, w, logits)
    model.train(was_training)
    return {
        "loss": total_nats / max(total_weight, 1e-12),
        "bpb": text_nats / math.log(2) / max(total_bytes, 1),
        "tokens": total_tokens,
        "weight": total_weight,
        "bytes": total_bytes,
    }
