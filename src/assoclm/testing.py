"""Comparison helpers for tests of fast paths against their references."""

from __future__ import annotations

import torch


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64 (0 when both are zero)."""
    a, b = actual.detach().double(), expected.detach().double()
    denom = b.norm().item()
    diff = (a - b).norm().item()
    return diff if denom == 0 else diff / denom


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, name: str) -> None:
    """Fail with the relative error, the tolerance and the worst element when they differ."""
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
        )
    a, b = actual.detach().double(), expected.detach().double()
    if not torch.isfinite(a).all():
        raise AssertionError(f"{name}: contains NaN/inf")
    err = rel_error(a, b)
    if err > tol:
        i = (a - b).abs().argmax().item()
        raise AssertionError(
            f"{name}: relative error {err:.3e} > tol {tol:.1e}; worst element at flat index {i}: "
            f"{a.flatten()[i].item():.6g} vs expected {b.flatten()[i].item():.6g}"
        )


def memory_op_inputs(B=2, T=7, H=3, K=12, V=20, decay=True, init=True, seed=0,
                     decay_range=(0.5, 1.0), device="cpu", dtype=torch.float32) -> dict:
    """Random arguments of a matrix-memory op (delta rule, linear attention): q, k (unit
    norm, as callers provide), v [B, T, H, ·], β in (0.05, 1], α in decay_range, S₀."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    lo, hi = decay_range
    x = {
        "q": torch.randn(B, T, H, K, generator=g),
        "k": F.normalize(torch.randn(B, T, H, K, generator=g), dim=-1),
        "v": torch.randn(B, T, H, V, generator=g),
        "beta": 0.05 + 0.95 * torch.rand(B, T, H, generator=g),
        "decay": lo + (hi - lo) * torch.rand(B, T, H, generator=g) if decay else None,
        "initial_state": torch.randn(B, H, K, V, generator=g) if init else None,
    }
    return {n: None if t is None else t.to(device=device, dtype=dtype) for n, t in x.items()}


def run_with_grads(fn, inputs: dict, read: str, seed: int = 1, forward_context=None) -> dict:
    """Forward ``fn(**inputs, read=read) -> (o, S)`` (inside forward_context, if given), then
    backward with fixed random cotangents; returns outputs and the inputs' gradients."""
    import contextlib

    leaves = {n: None if t is None else t.clone().requires_grad_() for n, t in inputs.items()}
    with forward_context or contextlib.nullcontext():
        o, S = fn(**leaves, read=read)
    g = torch.Generator().manual_seed(seed)
    do = torch.randn(o.shape, generator=g).to(o)
    dS = torch.randn(S.shape, generator=g).to(S)
    torch.autograd.backward([o, S], [do, dS])
    out = {"o": o.detach(), "final_state": S.detach()}
    out.update({f"d{n}": t.grad for n, t in leaves.items() if t is not None})
    return out


@torch.no_grad()
def assert_streaming_equivalence(model, tokens: torch.Tensor, cuts: list[int], tol: float,
                                 name: str = "") -> tuple:
    """A model's logits for ``tokens`` [B, T] read at once, in the pieces between ``cuts``
    (state carried), and token by token with ``step`` must agree to ``tol``.

    Returns the three final states (whole, pieces, steps) for the caller to compare.
    """
    full, s_full = model(tokens)
    state, parts = None, []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        logits, state = model(tokens[:, lo:hi], state)
        parts.append(logits)
    s_step, steps = None, []
    for t in range(tokens.shape[1]):
        logits, s_step = model.step(tokens[:, t], s_step)
        steps.append(logits)
    assert_rel_close(torch.cat(parts, 1), full, tol, f"{name}: chunked logits")
    assert_rel_close(torch.stack(steps, 1), full, tol, f"{name}: step logits")
    return s_full, state, s_step
