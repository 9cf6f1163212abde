"""Explicit, serialisable recurrent state: one fixed-size memory per layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MemoryState:
    """Per-layer matrix memories, each [B, H, K, V], and, for a model with a short
    convolution, each layer's last inputs to it ``convs`` [B, conv_size − 1, C]. Its size
    never depends on the tokens seen.

    Immutable: every method returns a new state, so a caller (a server holding one state per
    session) never sees a state change behind its back.
    """

    memories: tuple[torch.Tensor, ...]
    convs: tuple[torch.Tensor, ...] = ()

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
        if self.convs and len(self.convs) != len(self.memories):
            raise ValueError(f"{len(self.convs)} conv states for {len(self.memories)} layers")
        for i, c in enumerate(self.convs):
            if c.dim() != 3 or c.shape[0] != first.shape[0]:
                raise ValueError(f"layer {i} conv state must be [B, conv_size - 1, C] with "
                                 f"B={first.shape[0]}; got {list(c.shape)}")

    @property
    def batch_size(self) -> int:
        return self.memories[0].shape[0]

    @property
    def num_layers(self) -> int:
        return len(self.memories)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.memories + self.convs)

    def _map(self, fn) -> MemoryState:
        return MemoryState(tuple(fn(m) for m in self.memories), tuple(fn(c) for c in self.convs))

    def detach(self) -> MemoryState:
        return self._map(lambda t: t.detach())

    def to(self, device=None, dtype=None) -> MemoryState:
        return self._map(lambda t: t.to(device=device, dtype=dtype))

    def reset(self, mask: torch.Tensor) -> MemoryState:
        """Zero the lanes where `mask` [B] (bool) is true; other lanes are kept."""
        if mask.shape != (self.batch_size,) or mask.dtype != torch.bool:
            raise ValueError(
                f"reset mask must be a bool tensor of shape [{self.batch_size}]; "
                f"got {mask.dtype} {list(mask.shape)}"
            )
        keep = (~mask).to(self.memories[0].device)

        def zero(t: torch.Tensor) -> torch.Tensor:
            return t * keep.view(-1, *([1] * (t.dim() - 1))).to(t.dtype)
        return self._map(zero)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat name -> tensor mapping, ready for safetensors."""
        out = {f"layers.{i}.memory": m.detach().contiguous() for i, m in enumerate(self.memories)}
        out.update({f"layers.{i}.conv": c.detach().contiguous() for i, c in enumerate(self.convs)})
        return out

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> MemoryState:
        n = sum(1 for k in tensors if k.endswith(".memory"))
        memories = [f"layers.{i}.memory" for i in range(n)]
        convs = [f"layers.{i}.conv" for i in range(n)]
        if sorted(tensors) not in (sorted(memories), sorted(memories + convs)):
            raise ValueError(f"state dict keys must be {memories} (and {convs} for a model "
                             f"with a short convolution); got {sorted(tensors)}")
        return cls(tuple(tensors[k] for k in memories),
                   tuple(tensors[k] for k in convs if k in tensors))
