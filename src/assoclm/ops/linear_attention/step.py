"""One token of linear attention (additive writes), for streaming inference."""

from __future__ import annotations

import torch

from assoclm.ops.delta_rule.validate import check_delta_rule_args
from assoclm.ops.precision import float32_op


def _write(k, v, beta, decay, S_prev) -> torch.Tensor:
    # float32 inputs; S_t = α S + β k vᵀ
    update = beta[..., None, None] * k[..., :, None] * v[..., None, :]
    return S_prev + update if decay is None else decay.float()[..., None, None] * S_prev + update


@float32_op
def linear_attention_write(
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
    state_clip: float | None = None,
    check_values: bool = True,
) -> torch.Tensor:
    """Write one token into the memory without reading it: S_t, [B, H, K, V] in float32.

    For callers that read at another point of their computation (Propagator's
    write_from="output" reads before its MLP and writes after it). With `state_clip` the new
    state is clamped to [−state_clip, state_clip] (the Propagator seed's guard for that mode);
    off by default, the exact recurrence. Other arguments as in `linear_attention_step`; the
    input state is not modified.
    """
    check_delta_rule_args(None, k, v, beta, decay, state, "after", time_axis=False,
                          state_name="state", check_values=check_values)
    k, v, beta = (x.float() for x in (k, v, beta))
    S = _write(k, v, beta, decay, state.float())
    return S if state_clip is None else S.clamp(-state_clip, state_clip)


@float32_op
def linear_attention_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
    read: str = "after",
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance the memory by one token, S_t = α_t S_{t−1} + β_t k_t v_tᵀ, and read it.

    Recurrent linear attention (Katharopoulos et al. 2020, arXiv 2006.16236) with gates.

    Args:
        q, k: [B, H, K]; v: [B, H, V]; beta, decay: [B, H] in (0, 1] (decay None means 1);
        state: S_{t−1}, [B, H, K, V].
        read: "after" (o = S_tᵀq) or "before" (o = S_{t−1}ᵀq).
        check_values: check beta/decay lie in (0, 1] (one device sync); callers whose
            gates are in range by construction pass False.

    Returns:
        o: [B, H, V] in v's dtype; new_state: S_t, [B, H, K, V] in float32.
        The input state is not modified.
    """
    check_delta_rule_args(q, k, v, beta, decay, state, read, time_axis=False,
                          state_name="state", check_values=check_values)
    out_dtype = v.dtype
    q, k, v, beta = (x.float() for x in (q, k, v, beta))
    S_prev = state.float()
    S = _write(k, v, beta, decay, S_prev)
    o = torch.einsum("bhk,bhkv->bhv", q, S if read == "after" else S_prev)
    return o.to(out_dtype), S
