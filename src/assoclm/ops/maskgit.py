"""MaskGIT masking schedule and parallel iterative unmasking (Chang et al. 2022, "MaskGIT:
Masked Generative Image Transformer", arXiv 2202.04200).

Training draws, per example, r ~ U(0, 1) and masks ``ceil(γ(r)·n)`` of its n maskable
positions, with the cosine schedule ``γ(r) = cos(π/2 · r)``; the loss is taken at the masked
positions only. Decoding starts from every maskable position masked and runs ``steps``
rounds: each predicts every masked position at once, keeps the most confident predictions
and re-masks the rest so that after round t (1-based) ``floor(n · γ(t / steps))`` positions
stay masked (at least one fewer than before the round, and none after the last).
"""

from __future__ import annotations

import math

import torch


def mask_ratio(progress: torch.Tensor | float) -> torch.Tensor | float:
    """γ(r) = cos(π/2 · r): 1 at r = 0 (all masked), 0 at r = 1."""
    if isinstance(progress, torch.Tensor):
        return torch.cos(0.5 * math.pi * progress)
    return math.cos(0.5 * math.pi * progress)


def masked_after(step: int, steps: int, total: torch.Tensor) -> torch.Tensor:
    """How many positions stay masked after round ``step`` of ``steps``: [N] long from the
    number of maskable positions ``total`` [N]. Rounded down, so round ``steps`` gives 0."""
    if not 0 <= step <= steps or steps < 1:
        raise ValueError(f"need 0 <= step <= steps and steps >= 1; got step {step}, "
                         f"steps {steps}")
    ratio = mask_ratio(step / steps)
    # a float error must not keep a position masked after the last round
    return torch.floor(total.double() * ratio + 1e-9).long().clamp_(min=0)


def training_mask(maskable: torch.Tensor, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """A random training mask: maskable [N, T] bool -> mask [N, T] bool, a subset of it.

    Row n masks ``max(1, ceil(γ(r_n)·c_n))`` of its c_n maskable positions, chosen uniformly,
    with r_n ~ U(0, 1); rows with no maskable position mask nothing.
    """
    if maskable.dtype != torch.bool or maskable.dim() != 2:
        raise ValueError(f"maskable must be a [N, T] bool tensor; got {maskable.dtype} "
                         f"{tuple(maskable.shape)}")
    n, t = maskable.shape
    count = maskable.sum(1)
    r = torch.rand(n, generator=generator).to(maskable.device)
    k = torch.ceil(mask_ratio(r) * count).long().clamp(min=1)
    k = torch.minimum(k, count)
    # a random order of each row's maskable positions: the first k of them get masked
    noise = torch.rand(n, t, generator=generator).to(maskable.device)
    noise = noise.masked_fill(~maskable, 2.0)
    rank = noise.argsort(1).argsort(1)
    return (rank < k[:, None]) & maskable


def unmask_step(tokens: torch.Tensor, masked: torch.Tensor, logits: torch.Tensor, step: int,
                steps: int, total: torch.Tensor, mask_id: int, temperature: float = 0.0,
                generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding round.

    Args:
        tokens: [N, T] long, the current sequence (masked positions hold the mask id).
        masked: [N, T] bool, the positions still masked.
        logits: [N, T, V], the model's predictions for this sequence.
        step: this round, 1 .. steps.
        total: [N] long, each row's number of maskable positions (masked before round 1).
        mask_id: the token id that marks a masked position.
        temperature: 0 takes the argmax; > 0 samples from softmax(logits / temperature).

    Returns:
        (tokens, masked): every masked position predicted, then the least confident
        ``masked_after(step)`` of them (confidence = probability of the chosen token) put
        back to ``mask_id``.
    """
    if tokens.shape != masked.shape or logits.shape[:2] != tokens.shape:
        raise ValueError(f"tokens {tuple(tokens.shape)}, masked {tuple(masked.shape)} and "
                         f"logits {tuple(logits.shape)} must agree on [N, T]")
    probs = torch.softmax(logits.float(), dim=-1)
    if temperature > 0:
        scaled = torch.softmax(logits.float() / temperature, dim=-1)
        choice = torch.multinomial(scaled.flatten(0, 1), 1, generator=generator)
        choice = choice.view(tokens.shape)
    else:
        choice = probs.argmax(-1)
    confidence = probs.gather(-1, choice[..., None])[..., 0]
    still = masked.sum(1)
    target = torch.minimum(masked_after(step, steps, total.cpu()).to(still.device),
                           (still - 1).clamp(min=0))
    # rank the masked positions by confidence, lowest first; unmasked ones sort last
    confidence = confidence.masked_fill(~masked, float("inf"))
    rank = confidence.argsort(dim=1, stable=True).argsort(dim=1)
    remask = (rank < target[:, None]) & masked
    new_tokens = torch.where(masked, choice, tokens)
    new_tokens = new_tokens.masked_fill(remask, mask_id)
    return new_tokens, remask


__all__ = ["mask_ratio", "masked_after", "training_mask", "unmask_step"]
