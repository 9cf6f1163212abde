"""Argument checks shared by the delta-rule functions: fail fast, name the argument."""

from __future__ import annotations

import torch

READ_MODES = ("after", "before")


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _check_unit_interval(name: str, x: torch.Tensor) -> None:
    """Values must lie in (0, 1]; NaN fails too. Costs one device sync."""
    ok = torch.logical_and(x > 0, x <= 1).all()
    if not bool(ok):
        finite = x[torch.isfinite(x)]
        lo = finite.min().item() if finite.numel() else float("nan")
        hi = finite.max().item() if finite.numel() else float("nan")
        nan = " (contains NaN/inf)" if finite.numel() < x.numel() else ""
        raise ValueError(f"{name} must lie in (0, 1]; got values in [{lo:.4g}, {hi:.4g}]{nan}")


def check_delta_rule_args(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    decay: torch.Tensor | None,
    state: torch.Tensor | None,
    read: str,
    *,
    time_axis: bool,
    state_name: str = "initial_state",
    check_values: bool = True,
) -> None:
    """Check shapes, dtypes, devices and value ranges of delta-rule arguments.

    With ``time_axis``: q, k [B, T, H, K], v [B, T, H, V], beta/decay [B, T, H].
    Without (one token): q, k [B, H, K], v [B, H, V], beta/decay [B, H].
    state: [B, H, K, V]. q may be None (a write without a read); k then sets the layout.
    ``check_values=False`` skips the (0, 1] range checks of beta and decay, which cost a
    device sync: for callers whose gates are in range by construction.
    """
    if read not in READ_MODES:
        raise ValueError(f"read must be one of {READ_MODES}; got {read!r}")
    ref_name, ref = ("q", q) if q is not None else ("k", k)
    named = {ref_name: ref, "k": k, "v": v, "beta": beta}
    if decay is not None:
        named["decay"] = decay
    if state is not None:
        named[state_name] = state
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype; got {t.dtype}")
        if t.device != ref.device:
            raise ValueError(
                f"{name} is on {t.device} but {ref_name} is on {ref.device}; "
                "put all on one device"
            )

    layout = "[B, T, H, K]" if time_axis else "[B, H, K]"
    if ref.dim() != len(layout.split(",")):
        raise ValueError(f"{ref_name} must have shape {layout}; got {_shape(ref)}")
    if k.shape != ref.shape:
        raise ValueError(f"k must have the shape of q {_shape(ref)}; got {_shape(k)}")
    lead = ref.shape[:-1]
    if v.dim() != ref.dim() or v.shape[:-1] != lead:
        want = "[B, T, H, V]" if time_axis else "[B, H, V]"
        raise ValueError(
            f"v must have shape {want} with B, T, H of {ref_name} {_shape(ref)}; "
            f"got {_shape(v)}"
        )
    gate_layout = "[B, T, H]" if time_axis else "[B, H]"
    for name in ("beta", "decay"):
        t = named.get(name)
        if t is not None and t.shape != lead:
            raise ValueError(
                f"{name} must have shape {gate_layout} = {list(lead)}; got {_shape(t)}"
            )
    if state is not None:
        b, h, dk, dv = ref.shape[0], ref.shape[-2], ref.shape[-1], v.shape[-1]
        if tuple(state.shape) != (b, h, dk, dv):
            raise ValueError(
                f"{state_name} must have shape [B, H, K, V] = [{b}, {h}, {dk}, {dv}]; "
                f"got {_shape(state)}"
            )
    if not check_values:
        return
    _check_unit_interval("beta", beta)
    if decay is not None:
        _check_unit_interval("decay", decay)


def check_chunk_size(chunk_size: int) -> None:
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < 1
        or chunk_size & (chunk_size - 1)
    ):
        raise ValueError(
            f"chunk_size must be a positive power of two (1, 2, 4, ...); got {chunk_size!r}"
        )
