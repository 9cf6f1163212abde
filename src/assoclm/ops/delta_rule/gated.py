"""Run this library's delta rule through a gated-delta-rule implementation (e.g. fla's).

Gated DeltaNet (Yang et al. 2024, arXiv 2412.06464; flash-linear-attention's
`chunk_gated_delta_rule`) computes

    S_t = α_t (I − β'_t k_t k_tᵀ) S_{t−1} + β'_t k_t v'_tᵀ,   g_t = log α_t,

which equals ours, S_t = α_t S_{t−1} + β_t k_t (v_t − S_{t−1}ᵀ k_t)ᵀ, with β' = β/α and
v' = α·v. fla only reads "after" the write; a "before" read is an "after" read with the
queries shifted one step earlier (q'_s = q_{s+1}), plus the first token read from S_0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from assoclm.ops.delta_rule.validate import check_delta_rule_args


def to_gated_args(
    v: torch.Tensor, beta: torch.Tensor, decay: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Map (v [B, T, H, V], β [B, T, H], α [B, T, H] or None) to gated-delta-rule (v', β', g)."""
    if decay is None:
        return v, beta, torch.zeros_like(beta)
    return v * decay[..., None], beta / decay, decay.log()


def delta_rule_via_gated(
    gated_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    read: str = "after",
    **gated_kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compute `delta_rule_recurrent`'s result with a gated-delta-rule function.

    Args:
        gated_fn: called as gated_fn(q=, k=, v=, g=, beta=, scale=1.0, initial_state=,
            output_final_state=True, **gated_kwargs) -> (o, final_state), the keyword
            interface of fla's `chunk_gated_delta_rule` and its naive references.
        q, k: [B, T, H, K]; v: [B, T, H, V]; beta, decay: [B, T, H]; initial_state: [B, H, K, V].

    Returns:
        o: [B, T, H, V]; final_state: [B, H, K, V].
    """
    check_delta_rule_args(q, k, v, beta, decay, initial_state, read, time_axis=True)
    v_g, beta_g, g = to_gated_args(v, beta, decay)
    q_read = q if read == "after" else torch.cat([q[:, 1:], torch.zeros_like(q[:, :1])], dim=1)
    o, S = gated_fn(
        q=q_read, k=k, v=v_g, g=g, beta=beta_g, scale=1.0,
        initial_state=initial_state, output_final_state=True, **gated_kwargs,
    )
    if read == "before":
        B, _, H, K = q.shape
        S0 = q.new_zeros(B, H, K, v.shape[-1]) if initial_state is None else initial_state
        first = torch.einsum("bhk,bhkv->bhv", q[:, 0].to(S0.dtype), S0).to(o.dtype)
        o = torch.cat([first[:, None], o[:, :-1]], dim=1)
    return o, S
