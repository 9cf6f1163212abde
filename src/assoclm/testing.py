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
