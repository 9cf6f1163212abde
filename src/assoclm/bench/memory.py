"""Peak tensor memory of a piece of work, on any device, CPU included.

CUDA has ``torch.cuda.max_memory_allocated``; the CPU allocator keeps no such count, and a
process's RSS mixes in the Python heap and the libraries. ``peak_tensor_bytes`` instead
watches every tensor that PyTorch ops create while ``fn`` runs (a ``TorchDispatchMode``,
which sees the backward pass too) and tracks the bytes of the storages still alive after
each op: the same quantity CUDA's counter measures, without its allocator rounding. Tensors
that existed before (the parameters) are not counted; add them yourself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class _LiveStorages(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current = 0
        self.peak = 0

    def _sweep(self) -> None:
        dead = [key for key, (ref, _) in self.live.items() if ref.expired()]
        for key in dead:
            self.current -= self.live.pop(key)[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._sweep()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                ref = StorageWeakRef(storage)
                if ref.cdata not in self.live:
                    nbytes = storage.nbytes()
                    self.live[ref.cdata] = (ref, nbytes)
                    self.current += nbytes
        self.peak = max(self.peak, self.current)
        return out


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """The most bytes of tensors created by ``fn()`` alive at one time (tensors that existed
    before the call are not counted). ``fn`` may run a backward pass."""
    mode = _LiveStorages()
    with mode:
        fn()
    return mode.peak


def saved_for_backward_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the tensors autograd saves for the backward pass while ``fn()`` runs the
    forward (a tensor saved twice counts twice)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total


__all__ = ["peak_tensor_bytes", "saved_for_backward_bytes"]
