"""Explicit, serialisable recurrent state: one fixed-size memory per layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MemoryState:
    """Per-layer matrix memories, each [B, H, K, V]. Its size never depends on tokens seen.

    Immutable: every method returns a new state, so a caller (a server holding one state per
    session) never sees a state change behind its back.
    """

    memories: tuple[torch.Tensor, ...]

    def __post_init__(self) -> None:
        if not self.memories:
            raise ValueError("MemoryState needs at least one layer memory")
        first = self.memories[0]
        for i, m in enumerate(self.memories):
            if m.dim() != 4 or m.shape[0] != first.shape[0]:
                raise ValueError(
                    f"layer {i} memory must be [B, H, K, V] with B={first.shape[0]}; "
                    f"got {list(m.shape)}"
                )

    @property
    def batch_size(self) -> int:
        return self.memories[0].shape[0]

    @property
    def num_layers(self) -> int:
        return len(self.memories)

    @property
    def nbytes(self) -> int:
        return sum(m.numel() * m.element_size() for m in self.memories)

    def detach(self) -> MemoryState:
        return MemoryState(tuple(m.detach() for m in self.memories))

    def to(self, device=None, dtype=None) -> MemoryState:
        return MemoryState(tuple(m.to(device=device, dtype=dtype) for m in self.memories))

    def reset(self, mask: torch.Tensor) -> MemoryState:
        """Zero the lanes where `mask` [B] (bool) is true; other lanes are kept."""
        if mask.shape != (self.batch_size,) or mask.dtype != torch.bool:
            raise ValueError(
                f"reset mask must be a bool tensor of shape [{self.batch_size}]; "
                f"got {mask.dtype} {list(mask.shape)}"
            )
        keep = (~mask).to(self.memories[0].device)[:, None, None, None]
        return MemoryState(tuple(m * keep.to(m.dtype) for m in self.memories))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat name -> tensor mapping, ready for safetensors."""
        return {f"layers.{i}.memory": m.detach().contiguous() for i, m in enumerate(self.memories)}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> MemoryState:
        n = len(tensors)
        expected = [f"layers.{i}.memory" for i in range(n)]
        if sorted(tensors) != sorted(expected):
            raise ValueError(f"state dict keys must be {expected}; got {sorted(tensors)}")
        return cls(tuple(tensors[k] for k in expected))
