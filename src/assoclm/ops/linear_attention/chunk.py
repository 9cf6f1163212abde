"""Chunk-parallel linear attention: only T/C steps are sequential, the rest is matrix products.

Gated linear attention in chunked form (Katharopoulos et al. 2020, arXiv 2006.16236, for the
recurrence; Yang et al. 2023, arXiv 2312.06635, for the chunk-wise gated form); README.md
beside this file derives it.
"""

from __future__ import annotations

import torch

from assoclm.ops.chunking import Chunks, segment_decay
from assoclm.ops.delta_rule.validate import check_chunk_size, check_delta_rule_args
from assoclm.ops.precision import float32_op


@float32_op
def linear_attention_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    read: str = "after",
    chunk_size: int = 64,
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear attention over a sequence, chunk-parallel; equal to `linear_attention_recurrent`.

        S_t = α_t · S_{t−1} + β_t · k_t v_tᵀ
        o_t = S_tᵀ q_t  (read="after")   or   S_{t−1}ᵀ q_t  (read="before")

    Differentiable by autograd; any T (padded internally); computes in float32.

    Args:
        q: read keys, [B, T, H, K].
        k: write keys, [B, T, H, K]; the caller normalises them (no scaling here).
        v: values, [B, T, H, V].
        beta: write strengths β, [B, T, H], in (0, 1].
        decay: retention α, [B, T, H], in (0, 1]; None means α ≡ 1.
        initial_state: S_0, [B, H, K, V]; None means zeros.
        read: "after" or "before" this token's write.
        chunk_size: C, a power of two; shorter sequences use the next power of two ≥ T.
        check_values: check beta/decay lie in (0, 1] (one device sync); callers whose gates
            are in range by construction pass False.

    Returns:
        o: [B, T, H, V] in v's dtype; final_state: [B, H, K, V] in float32.
    """
    check_delta_rule_args(q, k, v, beta, decay, initial_state, read, time_axis=True,
                          check_values=check_values)
    check_chunk_size(chunk_size)
    B, T, H, K = q.shape
    V = v.shape[-1]
    out_dtype = v.dtype
    if initial_state is None:
        S = q.new_zeros(B, H, K, V, dtype=torch.float32)
    else:
        S = initial_state.float()
    if T == 0:
        return v.new_zeros(B, 0, H, V), S

    chunks = Chunks(B, T, H, chunk_size)
    C = chunks.C
    q_, k_ = chunks.split(q), chunks.split(k)  # (N, G, C, K)
    # Padded steps have β = 0 and α = 1: they leave the state untouched.
    u = chunks.split(beta)[..., None] * chunks.split(v)  # β-scaled values, (N, G, C, V)
    b, b_prev = chunks.log_retention(decay, u[..., 0])  # (N, G, C) each
    ones = torch.ones(C, C, dtype=torch.bool, device=q.device)
    b_read, mask = (b, ones.tril()) if read == "after" else (b_prev, ones.tril(-1))

    # o_r = exp(b_read_r) S_0ᵀ q_r + Σ_j (q_r·k_j) exp(b_read_r − b_j) β_j v_j over j ≤ r
    # ("after") or j < r ("before"): the part inside the chunk needs no state.
    P = (q_ @ k_.transpose(-1, -2)) * segment_decay(b_read, b, mask)  # (N, G, C, C)
    o_intra = P @ u  # (N, G, C, V)
    q_decayed = q_ * b_read.exp().float()[..., None]  # (N, G, C, K)
    # S_C = exp(b_C) S_0 + Σ_j exp(b_C − b_j) β_j k_j v_jᵀ
    k_to_end = k_ * (b[..., -1:] - b).exp().float()[..., None]  # (N, G, C, K)
    chunk_writes = k_to_end.transpose(-1, -2) @ u  # (N, G, K, V)
    chunk_decay = b[..., -1].exp().float()[..., None, None]  # (N, G, 1, 1)

    # The only sequential part: N steps of one scale and one add.
    S = S.reshape(B * H, K, V)
    starts = []
    for g_n, dS_n in zip(chunk_decay, chunk_writes):
        starts.append(S)
        S = g_n * S + dS_n
    o = q_decayed @ torch.stack(starts) + o_intra  # (N, G, C, V)
    return chunks.merge(o).to(out_dtype), S.view(B, H, K, V)
