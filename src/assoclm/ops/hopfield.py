"""Modern (continuous) Hopfield energy and its retrieval update (Ramsauer et al. 2020,
"Hopfield Networks is All You Need", arXiv 2008.02217).

With stored patterns X = (x_1 .. x_N) and a state ξ, the energy is

    E(ξ) = −β⁻¹ log Σ_i exp(β x_iᵀ ξ) + ½ ξᵀξ      (constants β⁻¹ log N + ½M² dropped)

and the update ξ ← Xᵀ softmax(β X ξ) never increases it (it is a concave-convex procedure
step). That update is attention with queries ξ and keys = values = X, which is why EAM's
attention is read as one Hopfield retrieval step and the energy is its diagnostic.
"""

from __future__ import annotations

import torch


def _check(xi: torch.Tensor, patterns: torch.Tensor, beta: float) -> None:
    if xi.dim() < 2 or patterns.dim() < 2 or xi.shape[-1] != patterns.shape[-1]:
        raise ValueError(f"xi [..., Q, d] and patterns [..., N, d] must share d; got "
                         f"{tuple(xi.shape)} and {tuple(patterns.shape)}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0; got {beta!r}")


def hopfield_energy(xi: torch.Tensor, patterns: torch.Tensor, beta: float) -> torch.Tensor:
    """E(ξ) for each state: xi [..., Q, d], patterns [..., N, d] -> [..., Q] (float32+)."""
    _check(xi, patterns, beta)
    xi = xi.float() if xi.dtype in (torch.float16, torch.bfloat16) else xi
    patterns = patterns.to(xi.dtype)
    scores = beta * xi @ patterns.transpose(-1, -2)  # [..., Q, N]
    return -torch.logsumexp(scores, dim=-1) / beta + 0.5 * (xi * xi).sum(-1)


def hopfield_retrieve(xi: torch.Tensor, patterns: torch.Tensor, beta: float) -> torch.Tensor:
    """One update ξ ← Xᵀ softmax(β X ξ): xi [..., Q, d], patterns [..., N, d] -> [..., Q, d]."""
    _check(xi, patterns, beta)
    weights = torch.softmax(beta * xi @ patterns.transpose(-1, -2), dim=-1)
    return weights @ patterns


__all__ = ["hopfield_energy", "hopfield_retrieve"]
