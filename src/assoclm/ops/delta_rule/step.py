"""One token of the delta rule, for streaming inference."""

from __future__ import annotations

import torch

from assoclm.ops.delta_rule.validate import check_delta_rule_args
from assoclm.ops.precision import float32_op


def _write(k, v, beta, decay, S_prev, error_clip, state_clip) -> torch.Tensor:
    # float32 inputs; S_t = α S + β k (v − Sᵀk)ᵀ with the optional guards. Batched matmuls
    # and one fused multiply-add rather than einsum and broadcast products: this runs once
    # per layer per generated token, where the per-op overhead is most of the cost.
    error = v - (k.unsqueeze(-2) @ S_prev).squeeze(-2)  # v − Sᵀk, [B, H, V]
    if error_clip is not None:
        error = error.clamp(-error_clip, error_clip)
    kept = S_prev if decay is None else decay.float()[..., None, None] * S_prev
    S = torch.addcmul(kept, (beta[..., None] * k).unsqueeze(-1), error.unsqueeze(-2))
    if state_clip is not None:
        S = S.clamp(-state_clip, state_clip)
    return S


@float32_op
def delta_rule_write(
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
    error_clip: float | None = None,
    state_clip: float | None = None,
    check_values: bool = True,
) -> torch.Tensor:
    """Write one token into the memory without reading it: S_t, [B, H, K, V] in float32.

    For callers that read at another point of their computation (Propagator's
    write_from="output" reads before its MLP and writes after it). Arguments as in
    `delta_rule_step`; the input state is not modified.
    """
    check_delta_rule_args(None, k, v, beta, decay, state, "after", time_axis=False,
                          state_name="state", check_values=check_values)
    k, v, beta = (x.float() for x in (k, v, beta))
    return _write(k, v, beta, decay, state.float(), error_clip, state_clip)


@float32_op
def delta_rule_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor,
    read: str = "after",
    error_clip: float | None = None,
    state_clip: float | None = None,
    check_values: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance the memory by one token and read it.

    With `error_clip` the write error v − Sᵀk is clamped to [−error_clip, error_clip], and
    with `state_clip` the new state to [−state_clip, state_clip] (the Propagator seed's
    guards for its sequential mode); both default to off, the exact delta rule.

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
    S = _write(k, v, beta, decay, S_prev, error_clip, state_clip)
    o = (q.unsqueeze(-2) @ (S if read == "after" else S_prev)).squeeze(-2)
    return o.to(out_dtype), S
