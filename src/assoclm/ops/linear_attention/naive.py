"""Ground truth for linear attention: a per-token loop in float32 that one can check by eye."""

from __future__ import annotations

import torch

from assoclm.ops.delta_rule.validate import check_delta_rule_args
from assoclm.ops.precision import float32_op


@float32_op
def linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    read: str = "after",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run gated linear attention (additive, Hebbian writes) one token at a time.

        S_t = α_t · S_{t−1} + β_t · k_t v_tᵀ
        o_t = S_tᵀ q_t  (read="after")   or   S_{t−1}ᵀ q_t  (read="before")

    Linear attention as a recurrent network (Katharopoulos et al. 2020, "Transformers are
    RNNs", arXiv 2006.16236), with a write strength and a retention gate, and without the
    normaliser: the same memory as the delta rule, but the write adds k vᵀ instead of
    correcting what the memory already returns for k.

    Args:
        q: read keys, [B, T, H, K].
        k: write keys, [B, T, H, K]; the caller normalises them (no scaling here).
        v: values, [B, T, H, V].
        beta: write strengths β, [B, T, H], in (0, 1].
        decay: retention α, [B, T, H], in (0, 1]; None means α ≡ 1.
        initial_state: S_0, [B, H, K, V]; None means zeros.
        read: "after" or "before" this token's write.

    Returns:
        o: [B, T, H, V] in v's dtype; final_state: [B, H, K, V] in float32.
    """
    check_delta_rule_args(q, k, v, beta, decay, initial_state, read, time_axis=True)
    B, T, H, K = q.shape
    V = v.shape[-1]
    out_dtype = v.dtype
    q, k, v, beta = (x.float() for x in (q, k, v, beta))
    decay = torch.ones_like(beta) if decay is None else decay.float()
    if initial_state is None:
        S = q.new_zeros(B, H, K, V)
    else:
        S = initial_state.float()

    # unbind rather than index q[:, t]: each index's backward would build a full-size zero
    # tensor, making the backward pass O(T²).
    steps = zip(q.unbind(1), k.unbind(1), v.unbind(1), beta.unbind(1), decay.unbind(1))
    outputs = []
    for q_t, k_t, v_t, beta_t, decay_t in steps:  # (B, H, K), (B, H, K), (B, H, V), (B, H) x2
        b_t, a_t = beta_t[..., None, None], decay_t[..., None, None]  # (B, H, 1, 1)
        S_prev = S
        S = a_t * S_prev + b_t * k_t[..., :, None] * v_t[..., None, :]
        S_read = S if read == "after" else S_prev
        outputs.append(torch.einsum("bhk,bhkv->bhv", q_t, S_read))
    o = torch.stack(outputs, dim=1) if T > 0 else q.new_zeros(B, 0, H, V)
    return o.to(out_dtype), S
