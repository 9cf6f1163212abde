"""Positronic's inference state: the KV cache plus the named per-lane tensors of stateful
traits, explicit and serialisable like every other state in assoclm.

``extras`` maps ``"layers.<i>.<name>"`` to a tensor with the batch first (the ring traits'
memories of layer i; see :mod:`assoclm.models.positronic.ring_traits`). A zero tensor is the
empty state, so a lane reset zeroes the lane's rows. ``state_dict()`` prefixes the cache's
tensors with ``kv.`` and the trait tensors with ``extras.``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from assoclm.layers.kv_cache import KVCacheState


@dataclass(frozen=True, eq=False)
class PositronicState:
    """The KV cache and, for stateful traits, named per-lane tensors (batch first; a zero
    tensor is the empty state, so a lane reset zeroes them). Immutable: methods return new
    states; ``extras`` is never changed in place."""

    kv: KVCacheState
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, t in self.extras.items():
            if t.dim() < 1 or t.shape[0] != self.kv.batch_size:
                raise ValueError(f"state tensor {name!r} must have the batch "
                                 f"{self.kv.batch_size} first; got {list(t.shape)}")

    @property
    def num_layers(self) -> int:
        return self.kv.num_layers

    @property
    def batch_size(self) -> int:
        return self.kv.batch_size

    @property
    def tokens_seen(self) -> int:
        return self.kv.tokens_seen

    @property
    def nbytes(self) -> int:
        return self.kv.nbytes + sum(t.numel() * t.element_size() for t in self.extras.values())

    def _with(self, kv: KVCacheState, fn) -> PositronicState:
        return PositronicState(kv, {k: fn(t) for k, t in self.extras.items()})

    def detach(self) -> PositronicState:
        return self._with(self.kv.detach(), lambda t: t.detach())

    def to(self, device=None, dtype=None) -> PositronicState:
        return self._with(self.kv.to(device, dtype),
                          lambda t: t.to(device=device, dtype=dtype if t.is_floating_point()
                                         else None))

    def reset(self, mask: torch.Tensor) -> PositronicState:
        kv = self.kv.reset(mask)

        def zero(t: torch.Tensor) -> torch.Tensor:
            keep = (~mask).to(t.device).view(-1, *([1] * (t.dim() - 1)))
            return torch.where(keep, t, torch.zeros_like(t))
        return self._with(kv, zero)

    def rewind(self, drop: int) -> PositronicState:
        """Drop the newest ``drop`` tokens from the KV cache (consumes ``self``; see
        :meth:`KVCacheState.rewind`). Only a state without trait memories can rewind."""
        if self.extras:
            raise ValueError("a state with trait memories cannot be rewound")
        return PositronicState(self.kv.rewind(drop))

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {f"kv.{k}": t for k, t in self.kv.state_dict().items()}
        out.update({f"extras.{k}": t.detach().contiguous() for k, t in self.extras.items()})
        return out

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> PositronicState:
        bad = sorted(k for k in tensors if not k.startswith(("kv.", "extras.")))
        if bad:
            raise ValueError(f"state dict keys must start with 'kv.' or 'extras.'; got {bad}")
        kv = KVCacheState.from_state_dict(
            {k[3:]: t for k, t in tensors.items() if k.startswith("kv.")})
        return cls(kv, {k[7:]: t for k, t in tensors.items() if k.startswith("extras.")})
