"""Chunk-parallel delta rule: only T/C steps are sequential, the rest is matrix products.

The WY/UT form of DeltaNet (Yang et al. 2024, arXiv 2406.06484; with gates, Gated DeltaNet,
arXiv 2412.06464), written for this library's parametrisation (error against the undecayed
state); README.md beside this file derives it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from assoclm.ops.chunking import Chunks
from assoclm.ops.delta_rule.validate import check_chunk_size, check_delta_rule_args
from assoclm.ops.precision import float32_op


def _rows(x: torch.Tensor) -> torch.Tensor:
    """A per-token vector (..., C) as a column (..., C, 1): it scales the rows of a matrix."""
    return x.unsqueeze(-1)


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-1, -2)


def _by_chunk(x: torch.Tensor, chunks: Chunks) -> tuple[torch.Tensor, ...]:
    """A token-major [B, N·C, H, D] tensor as N strided views [B, H, C, D], one per chunk.

    Made once per pass (one view and one unbind instead of several ops per chunk: in these
    loops the per-op overhead of eager PyTorch is a good part of the time)."""
    B, H, C, N = chunks.B, chunks.H, chunks.C, chunks.N
    return x.reshape(B, N, C, H, x.shape[-1]).permute(1, 0, 3, 2, 4).unbind(0)


class _ChunkedDeltaRule(torch.autograd.Function):
    """The whole chunked delta rule as one autograd node, with a hand-derived backward.

    Inputs: q, k [B, N·C, H, K] and v [B, N·C, H, V] token-major, float32, zero-padded to
    whole chunks; beta [N, G, C] chunk-major (G = B·H, padded with zeros); b, b_prev
    [N, G, C] float64, the cumulative log-retentions inside each chunk
    (`Chunks.log_retention`); S0 [G, K, V]. Outputs O [B, N·C, H, V] and the final state
    [G, K, V].

    Per chunk (README.md, (2)–(4)), with Γ_rj = exp(b_prev_r − b_j) on j < r:

        A = diag(β) (K Kᵀ ⊙ Γ),   T = (I + A)⁻¹,   R_n = diag(β) V − diag(β γ_prev) K S_n,
        P = Q Kᵀ ⊙ Γ_read,        Q̃ = diag(exp b_read) Q,   K̃ = diag(exp(b_C − b)) K,
        E_n = T R_n,              S_{n+1} = g_n S_n + K̃_nᵀ E_n,   O_n = Q̃_n S_n + P_n E_n,

    where γ_prev = exp(b_prev), g = exp(b_C), and Γ_read is Γ ("before") or
    exp(b_r − b_j) on j ≤ r ("after"), i.e. diag(α) Γ + I.

    Why one node, and why chunk by chunk: on CPU these small products are bound by memory
    traffic and by page faults on freshly allocated tensors far more than by arithmetic. So
    both passes walk the chunks once, doing every product of a chunk (batched over the B·H
    heads) while its operands are in cache, into reused scratch buffers; full-size tensors
    are only those saved for the backward pass and the results. Inputs are read, and the
    output and input gradients written, directly in the token-major layout. The backward
    pass saves only what it needs and is derived by hand (see `backward`).
    """

    @staticmethod
    def forward(ctx, q, k, v, beta, b, b_prev, S0, read_after: bool, chunks: Chunks):
        B, H, C, N = chunks.B, chunks.H, chunks.C, chunks.N
        G, K, V = B * H, q.shape[-1], v.shape[-1]

        dt = q.dtype  # float32 here; float64 in the gradient check of the tests
        # In-chunk decays, exponentiated in float64 (Chunks.log_retention says why) and then
        # cast: Γ_rj = exp(b_prev_r − b_j) for j < r. Entries on and above the diagonal are
        # zeroed after the cast (tril_ overwrites, so an inf there does no harm).
        gam = (b_prev[..., :, None] - b[..., None, :]).exp_().to(dt).tril_(-1)  # (N, G, C, C)
        if read_after:
            # exp(b_r − b_j) = α_r · exp(b_prev_r − b_j) for j < r, and 1 on the diagonal.
            gam_read = gam * _rows((b - b_prev).exp().to(dt))
            gam_read.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        else:
            gam_read = gam
        # Per-token factors (N, G, C) and the per-chunk decay g = exp(b_C) (N, G).
        rho = (b if read_after else b_prev).exp().to(dt)  # Q̃ = diag(rho) Q
        kappa = (b[..., -1:] - b).exp().to(dt)  # K̃ = diag(kappa) K
        gamma_prev = b_prev.exp().to(dt)
        beta_gamma = beta * gamma_prev
        chunk_decay = b[..., -1].exp().to(dt)

        # Saved for the backward pass, written chunk by chunk.
        KKg = gam.new_empty(N, G, C, C)  # K Kᵀ ⊙ Γ
        T = torch.empty_like(KKg)  # (I + A)⁻¹
        P = torch.empty_like(KKg)  # Q Kᵀ ⊙ Γ_read
        E = q.new_empty(N, G, C, V)
        S_all = q.new_empty(N + 1, G, K, V)  # S_all[n]: the state before chunk n
        S_all[0] = S0
        O = v.new_empty(v.shape)  # contiguous, so that its per-chunk views are views
        # Per-chunk scratch, reused.
        q_n, k_n, k_scaled = q.new_empty(G, C, K), q.new_empty(G, C, K), q.new_empty(G, C, K)
        v_n, R_n, O_n = v.new_empty(G, C, V), v.new_empty(G, C, V), v.new_empty(G, C, V)
        L = gam.new_empty(G, C, C)
        eye = torch.zeros_like(L)
        eye.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        # Per-chunk views, made once.
        q_c, k_c, v_c, O_c = (_by_chunk(x, chunks) for x in (q, k, v, O))
        S_l, KKg_l, T_l, P_l, E_l = (x.unbind(0) for x in (S_all, KKg, T, P, E))
        gam_l, gam_read_l = gam.unbind(0), gam_read.unbind(0)
        rho_l, kappa_l, beta_l, beta_gamma_l = (
            _rows(x).unbind(0) for x in (rho, kappa, beta, beta_gamma))
        g_l = chunk_decay[..., None, None].unbind(0)  # (G, 1, 1) each
        q_n4, k_n4, v_n4 = q_n.view(B, H, C, K), k_n.view(B, H, C, K), v_n.view(B, H, C, V)
        O_n4 = O_n.view(B, H, C, V)

        for n in range(N):
            q_n4.copy_(q_c[n])
            k_n4.copy_(k_c[n])
            v_n4.copy_(v_c[n])
            S_n, E_n, T_n, KKg_n, P_n = S_l[n], E_l[n], T_l[n], KKg_l[n], P_l[n]
            # Inside a chunk the write errors e_r = β_r (v_r − S_{r−1}ᵀ k_r) solve the unit
            # lower triangular system (I + A) E_n = R_n = diag(β) V − diag(β γ_prev) K S_n
            # (README.md). (With U = T diag(β) V and W = T diag(β γ_prev) K this is
            # E_n = U − W S_n; applying T after the product with S_n needs no W: fewer flops.)
            torch.bmm(k_n, _t(k_n), out=KKg_n).mul_(gam_l[n])
            torch.addcmul(eye, KKg_n, beta_l[n], out=L)  # I + A (K Kᵀ ⊙ Γ is 0 on the diagonal)
            torch.linalg.solve_triangular(L, eye, upper=False, unitriangular=True, out=T_n)
            torch.mul(k_n, beta_gamma_l[n], out=k_scaled)
            torch.mul(v_n, beta_l[n], out=R_n).baddbmm_(k_scaled, S_n, alpha=-1.0)
            torch.bmm(T_n, R_n, out=E_n)
            # Read: o_r = rho_r S_nᵀ q_r + Σ_j (q_r·k_j) Γ_read_rj e_j, i.e.
            # O_n = diag(rho) Q_n S_n + P_n E_n.
            torch.bmm(q_n, _t(k_n), out=P_n).mul_(gam_read_l[n])
            torch.bmm(q_n, S_n, out=O_n).mul_(rho_l[n]).baddbmm_(P_n, E_n)
            O_c[n].copy_(O_n4)
            # S_{n+1} = g_n S_n + K̃_nᵀ E_n, from S_C = γ_C S_0 + Σ_j exp(b_C − b_j) k_j e_jᵀ.
            torch.mul(k_n, kappa_l[n], out=k_scaled)
            torch.bmm(_t(k_scaled), E_n, out=S_l[n + 1]).addcmul_(g_l[n], S_n)

        ctx.read_after, ctx.chunks = read_after, chunks
        ctx.save_for_backward(q, k, v, beta, gam, gam_read, KKg, T, P, S_all, E, rho, kappa,
                              gamma_prev, chunk_decay)
        return O, S_all[N].clone()

    @staticmethod
    @once_differentiable  # the backward is hand-written: no graph through it
    def backward(ctx, dO, dS_final):
        (q, k, v, beta, gam, gam_read, KKg, T, P, S_all, E, rho, kappa, gamma_prev,
         chunk_decay) = ctx.saved_tensors
        chunks = ctx.chunks
        B, H, C, N = chunks.B, chunks.H, chunks.C, chunks.N
        G, K, V = B * H, q.shape[-1], v.shape[-1]
        need_db = ctx.needs_input_grad[4] or ctx.needs_input_grad[5]
        beta_gamma = beta * gamma_prev
        if dO is None:
            dO = torch.zeros_like(v)
        beta_ = _rows(beta)

        # Input gradients, token-major like the inputs, written once, chunk by chunk.
        dq, dk, dv = q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)
        # C×C products kept for the reductions that give dβ and the decay gradient.
        dP, DEt = torch.empty_like(P), torch.empty_like(P)  # dO Eᵀ and D Eᵀ (= −dA)
        # Row dot products: ⟨v_r, D_r⟩, ⟨k_r, (D S_nᵀ)_r⟩, ⟨Q̃_r, dQ̃_r⟩, ⟨K̃_r, dK̃_r⟩.
        vD, kDS = torch.empty_like(beta), torch.empty_like(beta)
        if need_db:
            qdq, kdk = torch.empty_like(beta), torch.empty_like(beta)
            dg = chunk_decay.new_empty(N, G)
        # Per-chunk scratch, reused: it stays in cache.
        q_n, k_n, q_scaled, k_scaled, dq_n, dk_n, DS_n = (q.new_empty(G, C, K) for _ in range(7))
        v_n, dO_n, dE_n, D_n, dv_n = (v.new_empty(G, C, V) for _ in range(5))
        cc, cc_sym = q.new_empty(G, C, C), q.new_empty(G, C, C)
        # Per-chunk views, made once.
        q_c, k_c, v_c, dO_c, dq_c, dk_c, dv_c = (
            _by_chunk(x, chunks) for x in (q, k, v, dO, dq, dk, dv))
        S_l, T_l, P_l, E_l = (x.unbind(0) for x in (S_all, T, P, E))
        gam_l, gam_read_l, dP_l, DEt_l = (x.unbind(0) for x in (gam, gam_read, dP, DEt))
        rho_l, kappa_l, beta_l, beta_gamma_l = (
            _rows(x).unbind(0) for x in (rho, kappa, beta, beta_gamma))
        vD_l, kDS_l = vD.unbind(0), kDS.unbind(0)
        if need_db:
            qdq_l, kdk_l, dg_l = qdq.unbind(0), kdk.unbind(0), dg.unbind(0)
        g_l = chunk_decay[..., None, None].unbind(0)
        q_n4, k_n4, v_n4, dO_n4 = (x.view(B, H, C, -1) for x in (q_n, k_n, v_n, dO_n))
        dq_n4, dk_n4, dv_n4 = (x.view(B, H, C, -1) for x in (dq_n, dk_n, dv_n))

        # The forward pass in reverse, chunk by chunk; dS is the gradient of S_{n+1} on entry
        # and of S_n on exit. Per chunk:
        # - O_n = Q̃ S_n + P E_n and S_{n+1} = g S_n + K̃ᵀ E_n give dE = Pᵀ dO + K̃ dS_{n+1},
        #   dQ̃ = dO S_nᵀ, dP = dO E_nᵀ, dK̃ = E_n dS_{n+1}ᵀ, dg = ⟨S_n, dS_{n+1}⟩.
        # - E_n = T R_n with T = (I + A)⁻¹. With D = Tᵀ dE: dR = D, and dT = dE Rᵀ gives
        #   dA = −Tᵀ dT Tᵀ = −D (T R)ᵀ = −D E_nᵀ on the strict lower triangle (A's only free
        #   entries). R_n = diag(β) V − diag(β γ_prev) K S_n then gives dV = diag(β) D,
        #   d(diag(β γ_prev) K) = −D S_nᵀ and dS_n −= (diag(β γ_prev) K)ᵀ D.
        # - A = diag(β)(K Kᵀ ⊙ Γ) gives d(K Kᵀ) = diag(β) dA ⊙ Γ, and P = Q Kᵀ ⊙ Γ_read gives
        #   d(Q Kᵀ) = dP ⊙ Γ_read.
        # dA and dP are kept (C×C per chunk) for the row sums that give dβ and the decays.
        dS = q.new_zeros(G, K, V) if dS_final is None else dS_final.clone()  # overwritten
        dS_prev = torch.empty_like(dS)
        for n in range(N - 1, -1, -1):
            q_n4.copy_(q_c[n])
            k_n4.copy_(k_c[n])
            v_n4.copy_(v_c[n])
            dO_n4.copy_(dO_c[n])
            S_n, E_n, DEt_n, dP_n = S_l[n], E_l[n], DEt_l[n], dP_l[n]
            # dE_n = P_nᵀ dO_n + K̃_n dS_{n+1}  (E_n feeds O_n and S_{n+1})
            torch.mul(k_n, kappa_l[n], out=k_scaled)  # K̃_n
            torch.bmm(_t(P_l[n]), dO_n, out=dE_n).baddbmm_(k_scaled, dS)
            torch.bmm(E_n, _t(dS), out=dk_n)  # dK̃_n
            if need_db:
                torch.linalg.vecdot(k_scaled, dk_n, out=kdk_l[n])
                torch.linalg.vecdot(S_n.flatten(-2), dS.flatten(-2), out=dg_l[n])
            dk_n.mul_(kappa_l[n])
            torch.bmm(_t(T_l[n]), dE_n, out=D_n)
            torch.mul(D_n, beta_l[n], out=dv_n)  # dV_n
            torch.linalg.vecdot(v_n, D_n, out=vD_l[n])
            torch.bmm(D_n, _t(S_n), out=DS_n)
            torch.linalg.vecdot(k_n, DS_n, out=kDS_l[n])
            dk_n.addcmul_(DS_n, beta_gamma_l[n], value=-1.0)
            torch.bmm(D_n, _t(E_n), out=DEt_n).tril_(-1)  # −dA_n
            torch.bmm(dO_n, _t(E_n), out=dP_n)
            torch.bmm(dO_n, _t(S_n), out=dq_n)  # dQ̃_n
            torch.mul(q_n, rho_l[n], out=q_scaled)  # Q̃_n
            if need_db:
                torch.linalg.vecdot(q_scaled, dq_n, out=qdq_l[n])
            dq_n.mul_(rho_l[n])
            # dS_n = Q̃_nᵀ dO_n + g_n dS_{n+1} − (diag(β γ_prev) K_n)ᵀ D_n: S_n feeds O_n,
            # S_{n+1} and R_n.
            torch.bmm(_t(q_scaled), dO_n, out=dS_prev)
            torch.mul(k_n, beta_gamma_l[n], out=k_scaled)
            dS_prev.addcmul_(g_l[n], dS).baddbmm_(_t(k_scaled), D_n, alpha=-1.0)
            dS, dS_prev = dS_prev, dS
            # dK += (dKK + dKKᵀ) K (K Kᵀ is symmetric), with dKK = −diag(β) DEt ⊙ Γ.
            torch.mul(DEt_n, beta_l[n], out=cc).mul_(gam_l[n])
            torch.add(cc, _t(cc), out=cc_sym)
            dk_n.baddbmm_(cc_sym, k_n, alpha=-1.0)
            # dQ += d(Q Kᵀ) K,  dK += d(Q Kᵀ)ᵀ Q
            torch.mul(dP_n, gam_read_l[n], out=cc)
            dq_n.baddbmm_(cc, k_n)
            dk_n.baddbmm_(_t(cc), q_n)
            dq_c[n].copy_(dq_n4)
            dk_c[n].copy_(dk_n4)
            dv_c[n].copy_(dv_n4)

        # dβ_r: through A (row sums of Z), diag(β) V and diag(β γ_prev) K.
        Z = DEt.mul_(KKg)  # −dA ⊙ (K Kᵀ ⊙ Γ): its row sums give −dβ; β-scaled, −dA ⊙ A
        dbeta = vD.sub_(kDS * gamma_prev).sub_(Z.sum(-1))

        db = db_prev = None
        if need_db:
            # Gradients of the cumulative log-decays. Each Γ-weighted entry X_rj = dΓ_rj Γ_rj
            # adds to its row's b_prev or b_read and subtracts from its column's b; after the
            # reverse cumsum to d log α these row and column terms nearly cancel, so they are
            # summed in float64 (as in `Chunks.log_retention`).
            # Sums are taken straight into float64 (no float64 copy of the C×C matrices); a
            # matrix whose rows and columns both feed the sums is summed from one set of
            # float32 values, so that its row and column terms cancel exactly.
            f64 = torch.float64
            X_A = Z.mul_(beta_).neg_()  # dA ⊙ A: rows → b_prev, columns → b
            X_P = dP.mul_(P)  # dP ⊙ P: rows → b_read, columns → b
            if ctx.read_after:
                rows_prev, rows_read = X_A.sum(-1, dtype=f64), X_P.sum(-1, dtype=f64)
                cols = X_A.sum(-2, dtype=f64).add_(X_P.sum(-2, dtype=f64))
            else:  # b_read = b_prev: one matrix
                X = X_A.add_(X_P)
                rows_prev, rows_read = X.sum(-1, dtype=f64), 0.0
                cols = X.sum(-2, dtype=f64)
            # Row terms: Q̃ = diag(exp b_read) Q and diag(β γ_prev) K with γ_prev = exp(b_prev).
            db_read = qdq.double().add_(rows_read)
            db_prev = rows_prev.sub_(beta_gamma * kDS)
            # Column terms, and K̃ = diag(exp(b_C − b)) K and g = exp(b_C).
            db = cols.add_(kdk).neg_()
            db[..., -1] += kdk.sum(-1, dtype=f64) + chunk_decay.double() * dg
            if ctx.read_after:
                db += db_read
            else:
                db_prev += db_read

        return dq, dk, dv, dbeta, db, db_prev, dS, None, None


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
    # Padded steps have β = 0 and α = 1: they leave the state untouched.
    beta_ = chunks.split(beta)  # (N, G, C)
    b, b_prev = chunks.log_retention(decay, beta_)  # (N, G, C) each, float64
    # Token-major inputs, zero-padded to whole chunks (a copy only when T % C ≠ 0).
    q, k, v = (F.pad(x.float(), (0, 0, 0, 0, 0, chunks.pad)) if chunks.pad else x.float()
               for x in (q, k, v))
    o, S = _ChunkedDeltaRule.apply(q, k, v, beta_, b, b_prev, S.reshape(B * H, K, V),
                                   read == "after", chunks)
    return o[:, :T].to(out_dtype), S.view(B, H, K, V)
