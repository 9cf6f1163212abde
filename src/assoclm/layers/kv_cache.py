"""KV cache for attention models: an explicit, immutable state with amortised O(1) appends.

A :class:`KVCacheState` holds one :class:`KVCache` per attention layer. A cache shows the keys
and values [B, H, N, Dh] of the N most recent tokens it retains, the absolute position of the
next token (``tokens_seen``, one counter for all lanes) and a per-lane ``start`` [B]: lane b
attends only to keys at absolute positions >= start[b]. That is how :meth:`KVCacheState.reset`
makes a lane forget everything seen so far without touching the other lanes. Positions are
absolute token counts; rotary embeddings depend only on the distance between a query and a
key, so a reset lane needs no position counter of its own.

Storage. Copying the whole cache for every decoded token would make each token cost O(context)
memory traffic, which would be an unfair baseline against a constant-size state. So a cache
does not own exact-size tensors: it looks into a preallocated, append-only :class:`KVStorage`
(one per layer: keys and values [B, H, capacity, Dh] and ``filled``, the number of slots
written so far) through the slot range [begin, begin + length). Appending T tokens:

* at the tip of its storage (begin + length == filled), with room left and autograd not
  recording: the new entries are written in place into slots [filled, filled + T), and the
  new cache is a new view of the same storage. A slot below ``filled`` is never written again
  and no cache sees a slot at or beyond its own end, so every older state on that storage
  still sees exactly what it saw before: immutability holds for the caller.
* not at the tip (the caller branched from an older state, or from a reset copy of the tip),
  out of room, or in another dtype or device: the retained entries and the new ones are
  copied into a fresh storage with slack for later appends, ``needed + max(min(needed, keep),
  16)`` slots. That doubles the capacity while the whole context is kept and leaves one window
  of slack with a sliding window; either way the copy costs O(1) per token, amortised.
* autograd recording (training): keys and values are concatenated out of place, since an
  in-place write would change tensors saved for the backward pass. The result is exactly
  full, so a later no-grad append reallocates.

Sliding window. A layer whose queries see at most ``window`` tokens (themselves included)
appends with ``keep = window - 1``: afterwards the cache retains only the newest ``keep``
entries; ``begin`` moves forward and nothing is copied. The dropped slots are freed when the
storage is next reallocated, which copies only the retained part (compaction). ``nbytes``
counts the retained entries only, so it grows with the context and is bounded by the window.

``state_dict()`` holds the retained keys and values of each layer, ``tokens_seen`` and
``start``; ``from_state_dict()`` validates them and rebuilds a state on an exactly full
storage.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# The smallest number of free slots a reallocated storage gets: a cache that keeps nothing
# (window 1) or little still appends in place for a while.
MIN_SLACK = 16
CONTIGUOUS = torch.contiguous_format


class KVStorage:
    """Append-only keys and values [B, H, capacity, Dh] of one layer, shared by a chain of caches.

    ``filled``: slots written so far. Only a cache that ends at ``filled`` may write, and only
    above it, so slots below ``filled`` never change. Internal: callers see :class:`KVCache`.
    """

    __slots__ = ("keys", "values", "filled")

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, filled: int):
        self.keys = keys
        self.values = values
        self.filled = filled

    @property
    def capacity(self) -> int:
        return self.keys.shape[2]

    @classmethod
    def copy_of(cls, keys: torch.Tensor, values: torch.Tensor) -> KVStorage:
        """An exactly full storage holding copies of keys, values [B, H, N, Dh]."""
        keys = keys.detach().clone(memory_format=CONTIGUOUS)
        values = values.detach().clone(memory_format=CONTIGUOUS)
        return cls(keys, values, keys.shape[2])


@dataclass(frozen=True, eq=False)
class KVCache:
    """One attention layer's cache: the slots [begin, begin + length) of ``storage``.

    storage      shared append-only buffers (see the module docstring)
    begin        slot of the oldest retained entry
    length       retained entries; their absolute positions are tokens_seen − length, ...
    tokens_seen  absolute position of the next token
    start        [B] long: lane b attends only to positions >= start[b]
    start_max    host copy of start.max(), so that decoding never waits for the device
    """

    storage: KVStorage
    begin: int
    length: int
    tokens_seen: int
    start: torch.Tensor
    start_max: int

    def __post_init__(self) -> None:
        if self.begin < 0 or self.length < 0 or self.begin + self.length > self.storage.filled:
            raise ValueError(
                f"cache slots [{self.begin}, {self.begin + self.length}) are outside the "
                f"{self.storage.filled} filled slots of its storage"
            )
        if self.length > self.tokens_seen:
            raise ValueError(f"cache retains {self.length} entries but has seen only "
                             f"{self.tokens_seen} tokens")
        if self.start.shape != (self.batch_size,):
            raise ValueError(f"cache start must have shape [{self.batch_size}]; "
                             f"got {list(self.start.shape)}")

    @classmethod
    def empty(cls, batch_size: int, num_heads: int, head_dim: int, device=None,
              dtype: torch.dtype = torch.float32, start: torch.Tensor | None = None) -> KVCache:
        shape = (batch_size, num_heads, 0, head_dim)
        storage = KVStorage(torch.empty(shape, device=device, dtype=dtype),
                            torch.empty(shape, device=device, dtype=dtype), 0)
        if start is None:
            start = torch.zeros(batch_size, dtype=torch.long, device=device)
        return cls(storage, 0, 0, 0, start, 0)

    @property
    def batch_size(self) -> int:
        return self.storage.keys.shape[0]

    @property
    def first_position(self) -> int:
        """Absolute position of the oldest retained entry."""
        return self.tokens_seen - self.length

    @property
    def keys(self) -> torch.Tensor:
        """Retained keys [B, H, length, Dh] (a view of the storage)."""
        return self.storage.keys[:, :, self.begin:self.begin + self.length]

    @property
    def values(self) -> torch.Tensor:
        """Retained values [B, H, length, Dh] (a view of the storage)."""
        return self.storage.values[:, :, self.begin:self.begin + self.length]

    @property
    def nbytes(self) -> int:
        return (self.keys.numel() * self.keys.element_size()
                + self.values.numel() * self.values.element_size())

    def _in_place_ok(self, k: torch.Tensor, T: int) -> bool:
        s = self.storage
        end = self.begin + self.length
        return (s.filled == end and end + T <= s.capacity
                and s.keys.dtype == k.dtype and s.keys.device == k.device
                # an inference tensor can only be written inside inference mode
                and (torch.is_inference_mode_enabled() or not s.keys.is_inference()))

    def append(self, k: torch.Tensor, v: torch.Tensor, keep: int
               ) -> tuple[KVCache, torch.Tensor, torch.Tensor]:
        """Add the next T tokens' keys and values.

        k, v [B, H, T, Dh]; keep: how many of the newest entries the returned cache retains.
        Returns (cache, keys, values) with keys, values [B, H, length + T, Dh]: the entries
        retained before this call followed by k, v (this call's attention input; the first
        is at absolute position ``self.first_position``).
        """
        T = k.shape[2]
        s = self.storage
        recording = torch.is_grad_enabled() and (
            k.requires_grad or v.requires_grad or s.keys.requires_grad or s.values.requires_grad)
        needed = self.length + T
        if recording:
            keys = torch.cat((self.keys.to(k.dtype), k), dim=2)
            values = torch.cat((self.values.to(v.dtype), v), dim=2)
            storage, lo = KVStorage(keys, values, needed), 0
        elif self._in_place_ok(k, T):
            end = self.begin + self.length
            s.keys[:, :, end:end + T].copy_(k)
            s.values[:, :, end:end + T].copy_(v)
            s.filled = end + T
            storage, lo = s, self.begin
        else:
            capacity = needed + max(min(needed, keep), MIN_SLACK)
            B, H, _, Dh = k.shape
            keys = k.new_empty((B, H, capacity, Dh))
            values = v.new_empty((B, H, capacity, Dh))
            keys[:, :, :self.length].copy_(self.keys)
            keys[:, :, self.length:needed].copy_(k)
            values[:, :, :self.length].copy_(self.values)
            values[:, :, self.length:needed].copy_(v)
            storage, lo = KVStorage(keys, values, needed), 0
        retained = min(needed, max(keep, 0))
        cache = KVCache(storage, lo + needed - retained, retained, self.tokens_seen + T,
                        self.start, self.start_max)
        return (cache, storage.keys[:, :, lo:lo + needed], storage.values[:, :, lo:lo + needed])

    def restarted(self, start: torch.Tensor, start_max: int, start_min: int) -> KVCache:
        """This cache with a new per-lane start; entries before start_min are dropped."""
        drop = min(max(start_min - self.first_position, 0), self.length)
        return KVCache(self.storage, self.begin + drop, self.length - drop, self.tokens_seen,
                       start, start_max)

    def rewound(self, drop: int) -> KVCache:
        """The cache without its ``drop`` newest entries; see :meth:`KVCacheState.rewind`."""
        s = self.storage
        if self.begin + self.length == s.filled:
            s.filled -= drop
        seen = self.tokens_seen - drop
        # a lane reset among the dropped tokens restarts at the new end instead
        return KVCache(s, self.begin, self.length - drop, seen, self.start.clamp(max=seen),
                       min(self.start_max, seen))

    def detach(self) -> KVCache:
        s = self.storage
        if not (s.keys.requires_grad or s.values.requires_grad):
            return self
        # A copy of the retained part only: the rest of the graph's tensors can be freed.
        return KVCache(KVStorage.copy_of(self.keys, self.values), 0, self.length,
                       self.tokens_seen, self.start, self.start_max)

    def to(self, device=None, dtype=None, start: torch.Tensor | None = None) -> KVCache:
        keys = self.keys.to(device=device, dtype=dtype)
        values = self.values.to(device=device, dtype=dtype)
        start = self.start.to(device=device) if start is None else start
        return KVCache(KVStorage.copy_of(keys, values), 0, self.length, self.tokens_seen,
                       start, self.start_max)


@dataclass(frozen=True, eq=False)
class KVCacheState:
    """Per-layer KV caches of an attention model: explicit, immutable, serialisable.

    Every method returns a new state; no state ever changes behind its holder's back (see the
    module docstring for how appends stay O(1) per token regardless).
    """

    layers: tuple[KVCache, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("KVCacheState needs at least one layer cache")
        first = self.layers[0]
        for i, c in enumerate(self.layers):
            if (c.batch_size, c.tokens_seen, c.length, c.start_max) != (
                    first.batch_size, first.tokens_seen, first.length, first.start_max):
                raise ValueError(
                    f"layer {i} cache (batch {c.batch_size}, tokens_seen {c.tokens_seen}, "
                    f"length {c.length}) does not match layer 0 (batch {first.batch_size}, "
                    f"tokens_seen {first.tokens_seen}, length {first.length})"
                )

    @classmethod
    def empty(cls, num_layers: int, batch_size: int, num_heads: int, head_dim: int,
              device=None, dtype: torch.dtype = torch.float32) -> KVCacheState:
        start = torch.zeros(batch_size, dtype=torch.long, device=device)
        return cls(tuple(KVCache.empty(batch_size, num_heads, head_dim, device, dtype, start)
                         for _ in range(num_layers)))

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def batch_size(self) -> int:
        return self.layers[0].batch_size

    @property
    def tokens_seen(self) -> int:
        """Tokens fed so far (the absolute position of the next token)."""
        return self.layers[0].tokens_seen

    @property
    def length(self) -> int:
        """Entries retained per layer: at most the attention window minus one."""
        return self.layers[0].length

    @property
    def start(self) -> torch.Tensor:
        """[B] long: the first absolute position each lane attends to."""
        return self.layers[0].start

    @property
    def keys(self) -> tuple[torch.Tensor, ...]:
        """Per layer, the retained keys [B, H, length, Dh]."""
        return tuple(c.keys for c in self.layers)

    @property
    def values(self) -> tuple[torch.Tensor, ...]:
        """Per layer, the retained values [B, H, length, Dh]."""
        return tuple(c.values for c in self.layers)

    @property
    def nbytes(self) -> int:
        """Bytes of the retained keys and values (not the free slots of the storage)."""
        return sum(c.nbytes for c in self.layers)

    def rewind(self, drop: int) -> KVCacheState:
        """This state without its ``drop`` newest tokens (speculative decoding's rollback).

        It **consumes** ``self``: the rewound caches reuse the storage and the next append
        overwrites the dropped slots in place, so the longer state must not be used
        afterwards. Only a cache that has never slid its window can be rewound (the tokens
        the window dropped are gone); otherwise a ValueError.
        """
        if not isinstance(drop, int) or not 0 <= drop <= self.length:
            raise ValueError(f"drop must be an integer in [0, {self.length}]; got {drop!r}")
        if self.layers[0].first_position > 0:
            raise ValueError("cannot rewind a KV cache whose sliding window has dropped tokens; "
                             "keep the context within the attention window")
        return KVCacheState(tuple(c.rewound(drop) for c in self.layers))

    def detach(self) -> KVCacheState:
        return KVCacheState(tuple(c.detach() for c in self.layers))

    def to(self, device=None, dtype=None) -> KVCacheState:
        """A copy on `device` with keys and values in `dtype` (positions stay integers)."""
        start = self.start.to(device=device)
        return KVCacheState(tuple(c.to(device, dtype, start) for c in self.layers))

    def reset(self, mask: torch.Tensor) -> KVCacheState:
        """Lanes where `mask` [B] (bool) is true forget every token seen so far; other lanes
        are kept."""
        if mask.shape != (self.batch_size,) or mask.dtype != torch.bool:
            raise ValueError(
                f"reset mask must be a bool tensor of shape [{self.batch_size}]; "
                f"got {mask.dtype} {list(mask.shape)}"
            )
        start = torch.where(mask.to(self.start.device), self.tokens_seen, self.start)
        # One device sync per reset (rare), none per decoded token.
        lo, hi = torch.stack(start.aminmax()).tolist() if start.numel() else (0, 0)
        return KVCacheState(tuple(c.restarted(start, hi, lo) for c in self.layers))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat name -> tensor mapping, ready for safetensors."""
        tensors = {
            "tokens_seen": torch.tensor(self.tokens_seen, dtype=torch.long),
            "start": self.start.detach().clone(),
        }
        for i, c in enumerate(self.layers):
            tensors[f"layers.{i}.keys"] = c.keys.detach().clone(memory_format=CONTIGUOUS)
            tensors[f"layers.{i}.values"] = c.values.detach().clone(memory_format=CONTIGUOUS)
        return tensors

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> KVCacheState:
        n = max((len(tensors) - 2) // 2, 1)
        expected = ["start", "tokens_seen"] + [
            f"layers.{i}.{kind}" for i in range(n) for kind in ("keys", "values")]
        if sorted(tensors) != sorted(expected):
            raise ValueError(f"state dict keys must be {sorted(expected)}; got {sorted(tensors)}")
        seen, start = tensors["tokens_seen"], tensors["start"]
        if seen.numel() != 1 or seen.is_floating_point() or int(seen) < 0:
            raise ValueError(f"tokens_seen must be one integer >= 0; got {seen!r}")
        tokens_seen = int(seen)
        if start.dim() != 1 or start.is_floating_point():
            raise ValueError(f"start must be an integer tensor [B]; got {start.dtype} "
                             f"{list(start.shape)}")
        start = start.long()
        lo, hi = torch.stack(start.aminmax()).tolist() if start.numel() else (0, 0)
        if lo < 0 or hi > tokens_seen:
            raise ValueError(f"start positions must lie in [0, tokens_seen={tokens_seen}]; "
                             f"got [{lo}, {hi}]")
        layers = []
        for i in range(n):
            k, v = tensors[f"layers.{i}.keys"], tensors[f"layers.{i}.values"]
            if k.dim() != 4 or k.shape != v.shape or k.shape[0] != start.shape[0]:
                raise ValueError(
                    f"layer {i} keys and values must both be [B={start.shape[0]}, H, N, Dh]; "
                    f"got {list(k.shape)} and {list(v.shape)}"
                )
            layers.append(KVCache(KVStorage.copy_of(k, v), 0, k.shape[2], tokens_seen,
                                  start.to(k.device), hi))
        return cls(tuple(layers))
