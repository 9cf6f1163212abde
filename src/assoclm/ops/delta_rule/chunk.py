"""Chunk-parallel delta rule: only T/C steps are sequential, the rest is matrix products.

The WY/UT form of DeltaNet (Yang et al. 2024, arXiv 2406.06484; with gates, Gated DeltaNet,
arXiv 2412.06464), written for this library's parametrisation (error against the undecayed
state); README.md beside this file derives it.
"""

from __future__ import annotations

import torch

from assoclm.ops.chunking import Chunks, segment_decay
from assoclm.ops.delta_rule.validate import check_chunk_size, check_delta_rule_args
from assoclm.ops.precision import float32_op


class _UnitLowerInverse(torch.autograd.Function):
    """Y = L⁻¹ for unit-lower-triangular L [..., C, C], with a cheap backward.

    Autograd through `solve_triangular` with many right-hand sides costs far more than
    this: dL = −(Yᵀ dY Yᵀ) restricted to the strict lower triangle (the diagonal is fixed).
    """

    @staticmethod
    def forward(ctx, L: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(L.shape[-1], dtype=L.dtype, device=L.device).expand_as(L)
        Y = torch.linalg.solve_triangular(L, eye, upper=False, unitriangular=True)
        ctx.save_for_backward(Y)
        return Y

    @staticmethod
    def backward(ctx, dY: torch.Tensor) -> torch.Tensor:
        (Y,) = ctx.saved_tensors
        Yt = Y.transpose(-1, -2)
        return -(Yt @ dY @ Yt).tril(-1)


class _StatePassing(torch.autograd.Function):
    """The only sequential part: carry the state across chunks, with a hand-written backward.

    Per chunk n, from its start state S_n:  E_n = U_n − W_n S_n,
    S_{n+1} = g_n S_n + K̃_nᵀ E_n,  O_n = Q̃_n S_n + P_n E_n.
    Forward and backward each do two small matmuls per chunk; every other product runs
    batched over all chunks, outside the loop.

    Chunk-major shapes (G = B·H): U, E, O [N, G, C, V]; W, Q̃, K̃ [N, G, C, K];
    P [N, G, C, C]; g [N, G]; S [G, K, V].
    """

    @staticmethod
    def forward(ctx, U, W, q_decayed, P, k_to_end, chunk_decay, S0):
        g = chunk_decay[..., None, None]  # (N, G, 1, 1)
        starts, errors = [], []
        S = S0
        # plain matmul, not baddbmm: on CPU baddbmm loops over the batch matrix by matrix.
        for U_n, W_n, kT_n, g_n in zip(U, W, k_to_end.transpose(-1, -2), g):
            starts.append(S)
            E = U_n - W_n @ S  # (G, C, V)
            errors.append(E)
            S = g_n * S + kT_n @ E
        S_all = torch.stack(starts)  # (N, G, K, V)
        E_all = torch.stack(errors)  # (N, G, C, V)
        O = q_decayed @ S_all + P @ E_all
        ctx.save_for_backward(W, q_decayed, P, k_to_end, chunk_decay, S_all, E_all)
        return O, S

    @staticmethod
    def backward(ctx, dO, dS_final):
        W, q_decayed, P, k_to_end, chunk_decay, S_all, E_all = ctx.saved_tensors
        g = chunk_decay[..., None, None]
        dS = torch.zeros_like(S_all[0]) if dS_final is None else dS_final
        dO = torch.zeros_like(E_all) if dO is None else dO.contiguous()
        # Contributions of O to dE_n and dS_n, for all chunks at once.
        dE_from_O = P.transpose(-1, -2) @ dO  # (N, G, C, V)
        dS_from_O = q_decayed.transpose(-1, -2) @ dO  # (N, G, K, V)
        dE_list, dS_next_list = [], []
        per_chunk = zip(dE_from_O, dS_from_O, k_to_end, W.transpose(-1, -2), g)
        for dE_O, dS_O, k_n, WT_n, g_n in reversed(list(per_chunk)):
            dS_next_list.append(dS)
            dE = dE_O + k_n @ dS  # (G, C, V)
            dE_list.append(dE)
            dS = dS_O + g_n * dS - WT_n @ dE
        dE_all = torch.stack(dE_list[::-1])  # (N, G, C, V)
        dS_next = torch.stack(dS_next_list[::-1])  # (N, G, K, V)
        dW = -(dE_all @ S_all.transpose(-1, -2))
        dq_decayed = dO @ S_all.transpose(-1, -2)
        dP = dO @ E_all.transpose(-1, -2)
        dk_to_end = E_all @ dS_next.transpose(-1, -2)
        dchunk_decay = (S_all * dS_next).sum((-1, -2))
        return dE_all, dW, dq_decayed, dP, dk_to_end, dchunk_decay, dS


@float32_op
def delta_rule_chunked(
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
    """The delta rule over a whole sequence, chunk-parallel; equal to `delta_rule_recurrent`.

        S_t = α_t · S_{t−1} + β_t · k_t (v_t − S_{t−1}ᵀ k_t)ᵀ
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
    q_, k_, v_ = chunks.split(q), chunks.split(k), chunks.split(v)  # (N, G, C, K|V)
    # Padded steps have β = 0 and α = 1: they leave the state untouched.
    beta_ = chunks.split(beta)  # (N, G, C)
    b, b_prev = chunks.log_retention(decay, beta_)  # (N, G, C) each
    ones = torch.ones(C, C, dtype=torch.bool, device=q.device)
    incl, strict = ones.tril(), ones.tril(-1)

    # Inside a chunk the write errors e_r = β_r (v_r − S_{r−1}ᵀ k_r) satisfy the
    # unit-lower-triangular system (I + A) E = diag(β) V − diag(β·γ_prev) K S_0 with
    # A_rj = β_r (k_r·k_j) exp(b_prev_r − b_j), j < r. Solve once per chunk for both
    # right-hand sides: E = U − W S_0.
    A = beta_[..., None] * (k_ @ k_.transpose(-1, -2)) * segment_decay(b_prev, b, strict)
    T_inv = _UnitLowerInverse.apply(A + torch.eye(C, dtype=A.dtype, device=A.device))
    U = T_inv @ (beta_[..., None] * v_)  # (N, G, C, V)
    W = T_inv @ ((beta_ * b_prev.exp().float())[..., None] * k_)  # (N, G, C, K)

    # o_r = exp(b_read_r) S_0ᵀ q_r + Σ_j (q_r·k_j) exp(b_read_r − b_j) e_j over j ≤ r ("after")
    # or j < r ("before"), where b_read is b or b_prev.
    b_read, mask = (b, incl) if read == "after" else (b_prev, strict)
    P = (q_ @ k_.transpose(-1, -2)) * segment_decay(b_read, b, mask)  # (N, G, C, C)
    q_decayed = q_ * b_read.exp().float()[..., None]
    # S_C = exp(b_C) S_0 + Σ_j exp(b_C − b_j) k_j e_jᵀ
    k_to_end = k_ * (b[..., -1:] - b).exp().float()[..., None]

    o, S = _StatePassing.apply(
        U, W, q_decayed, P, k_to_end, b[..., -1].exp().float(), S.reshape(B * H, K, V)
    )
    return chunks.merge(o).to(out_dtype), S.view(B, H, K, V)
