"""Held-out loss and bits per byte, reading each document in order with the state carried."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from assoclm.tokenizer import BaseTokenizer


def token_byte_lengths(tokenizer: BaseTokenizer) -> torch.Tensor:
    """[vocab] int64: how many bytes of text each id stands for (0 for control ids)."""
    return torch.tensor(
        [len(tokenizer.token_bytes(i) or b"") for i in range(tokenizer.vocab_size)],
        dtype=torch.int64,
    )


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                         ) -> torch.Tensor:
    """Per-position cross-entropy in nats (float32), zero where ``mask`` is 0. [B, T]."""
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
    return nll.view_as(mask) * mask


@torch.no_grad()
def evaluate(
    model: nn.Module,
    docs: Sequence[Sequence[int] | np.ndarray],
    byte_lengths: torch.Tensor,
    batch_size: int,
    seq_len: int,
    max_tokens: int,
    autocast: contextlib.AbstractContextManager | None = None,
) -> dict[str, float]:
    """Mean next-token loss (nats) and bits per byte on held-out documents.

    Each document is cut to an equal share of ``max_tokens`` (so one long document cannot
    dominate), documents are grouped ``batch_size`` at a time, and each group is read from
    its first token in windows of ``seq_len`` with the model state carried from window to
    window: the model is scored the way it is used, with everything it has read in memory.
    Bits per byte = total nats / ln 2 / total UTF-8 bytes of the target tokens, which is
    comparable across tokenizers.

    Returns:
        ``{"loss": ..., "bpb": ..., "tokens": ...}``.
    """
    docs = [np.asarray(d, dtype=np.int64) for d in docs if len(d) >= 2]
    if not docs:
        raise ValueError("no held-out document with at least 2 tokens to evaluate on")
    share = max(2, max_tokens // len(docs) + 1)
    docs = [d[:share] for d in docs]
    device = next(model.parameters()).device
    byte_lengths = byte_lengths.to(device)
    was_training = model.training
    model.eval()
    total_nats, total_tokens, total_bytes = 0.0, 0, 0
    for start in range(0, len(docs), batch_size):
        group = docs[start : start + batch_size]
        width = max(d.size for d in group)
        ids = torch.zeros(len(group), width, dtype=torch.int64)
        valid = torch.zeros(len(group), width, dtype=torch.float32)
        for row, d in enumerate(group):
            ids[row, : d.size] = torch.from_numpy(d)
            valid[row, : d.size] = 1.0
        ids, valid = ids.to(device), valid.to(device)
        state = None
        for t in range(0, width - 1, seq_len):
            inputs = ids[:, t : t + seq_len]
            targets = ids[:, t + 1 : t + seq_len + 1]
            inputs = inputs[:, : targets.shape[1]]
            mask = valid[:, t + 1 : t + 1 + targets.shape[1]]
            with autocast or contextlib.nullcontext():
                logits, state = model(inputs, state)
            nll = masked_cross_entropy(logits, targets, mask)
            total_nats += float(nll.sum())
            total_tokens += int(mask.sum())
            total_bytes += int((byte_lengths[targets] * mask.long()).sum())
    model.train(was_training)
    loss = total_nats / total_tokens
    return {
        "loss": loss,
        "bpb": total_nats / math.log(2) / max(total_bytes, 1),
        "tokens": total_tokens,
    }
