"""Ops that compute in float32 whatever the caller's autocast says."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def float32_op(fn: F) -> F:
    """Run ``fn`` with autocast off on its first argument's device.

    The ops upcast their inputs to float32 themselves. Under an enclosing
    ``torch.autocast`` their matmuls would otherwise be cast back down to bfloat16/float16,
    and a custom autograd Function would then see gradients of one dtype and saved tensors of
    another. Outputs keep the documented dtypes (the read in the values' dtype, the state in
    float32); the caller's autocast applies again as soon as the op returns.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next(x for x in (*args, *kwargs.values()) if isinstance(x, torch.Tensor))
        device_type = first.device.type
        # The common case (no autocast) costs one flag check, not a context switch: the
        # one-token step runs once per layer per generated token.
        if not torch.is_autocast_enabled(device_type):
            return fn(*args, **kwargs)
        with torch.autocast(device_type, enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
