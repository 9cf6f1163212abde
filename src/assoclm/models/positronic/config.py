"""Positronic's configuration and the names of its optional traits.

:class:`PositronicConfig` validates itself on construction: every size, rate and weight is
checked against its allowed range, and ``traits`` must be distinct names from
:data:`TRAITS`. The post-stack traits (:data:`POST_STACK_TRAITS`) act after the last block
(:mod:`assoclm.models.positronic.post_traits`); the ring traits (:data:`RING_TRAITS`) act
inside each layer's QuazimotoBlock (:mod:`assoclm.models.positronic.ring_traits`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from assoclm.config import Config, check_float, check_int, flag
from assoclm.ops.kuramoto import DEFAULT_RING_SIZES, check_ring_sizes

# the traits, each off by default and a no-op at initialisation
POST_STACK_TRAITS = ("hrm", "moe", "jepa")
RING_TRAITS = ("fractal_seed", "interstitial", "controllers", "specialists")
TRAITS = POST_STACK_TRAITS + RING_TRAITS


@dataclass
class PositronicConfig(Config):
    """Defaults: a small CPU-sized Positronic (the original: hidden 768, 12 query heads over 4
    KV heads). ``rope_fraction`` of each head is rotated (the rest carries no position);
    ``attn_rank`` is the rank of the low-rank query and output projections (None = full)."""

    vocab_size: int = 4096
    hidden_size: int = flag(256, help="model width")
    num_layers: int = flag(4, help="number of blocks")
    num_heads: int = flag(8, help="attention heads")
    num_kv_heads: int = flag(4, help="key/value heads (GQA)")
    rope_fraction: float = 0.5
    attn_rank: int | None = flag(128, help="rank of the low-rank query and output projections")
    rope_base: float = 10000.0
    max_context: int = flag(2048, help="attention window in tokens (the KV cache size)")
    ring_sizes: Sequence[int] = DEFAULT_RING_SIZES
    osc_steps: int = flag(4, help="Euler steps per token of the oscillators")
    osc_dt: float = 0.5
    center_omega: float = 0.1
    osc_expansion: float = 3.0
    osc_gate_init: float = 0.9
    osc_clamp: float = 10.0
    z_loss: float = 1e-4
    mtp_heads: int = flag(4, help="draft heads for speculative decoding (0: none)")
    mtp_weight: float = 0.3
    norm_eps: float = 1e-6
    init_std: float = 0.02
    # traits (each off unless named in ``traits``) and their sizes
    traits: Sequence[str] = flag((), help="optional traits", choices=TRAITS)
    hrm_steps: int = 3
    moe_experts: int = 4
    moe_top_k: int = 2
    moe_weight: float = 0.01
    jepa_ahead: int = 2
    jepa_weight: float = 0.1
    interstitial_window: int = 32
    ngram_buckets: int = 1024
    controller_dim: int = 16
    specialist_experts: int = 4
    specialist_top_k: int = 2
    specialist_dim: int = 16
    freeze_memories: bool = flag(False, help="no test-time writes to the traits' memories")

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                  "max_context", "hrm_steps", "moe_experts", "moe_top_k", "jepa_ahead",
                  "interstitial_window", "ngram_buckets", "controller_dim",
                  "specialist_experts", "specialist_top_k", "specialist_dim"):
            check_int(name, f, getattr(self, f))
        for f in ("osc_steps", "mtp_heads"):
            check_int(name, f, getattr(self, f), 0)
        if self.hidden_size % self.num_heads:
            raise ValueError(f"{name}.hidden_size={self.hidden_size} must be divisible by "
                             f"num_heads={self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"{name}.num_kv_heads={self.num_kv_heads} must divide "
                             f"num_heads={self.num_heads}")
        if self.moe_top_k > self.moe_experts or self.specialist_top_k > self.specialist_experts:
            raise ValueError(f"{name}: moe_top_k and specialist_top_k must not exceed the "
                             f"number of experts")
        check_float(name, "rope_fraction", self.rope_fraction, 0, 1, low_open=True)
        if self.rope_dim % 2 or self.rope_dim == 0:
            raise ValueError(f"{name}: rope_fraction · head_dim = {self.rope_dim} must be a "
                             f"positive even number (head_dim {self.head_dim})")
        if self.attn_rank is not None:
            check_int(name, "attn_rank", self.attn_rank)
        self.ring_sizes = check_ring_sizes(self.ring_sizes)
        check_float(name, "rope_base", self.rope_base, 1, math.inf, low_open=True,
                    high_open=True)
        check_float(name, "osc_dt", self.osc_dt, 0, 10, low_open=True)
        check_float(name, "center_omega", self.center_omega, -100, 100)
        check_float(name, "osc_expansion", self.osc_expansion, 0, 64, low_open=True)
        check_float(name, "osc_gate_init", self.osc_gate_init, 0, 1, True, True)
        check_float(name, "osc_clamp", self.osc_clamp, 0, math.inf, True, True)
        for f in ("z_loss", "mtp_weight", "moe_weight", "jepa_weight"):
            check_float(name, f, getattr(self, f), 0, math.inf, high_open=True)
        check_float(name, "norm_eps", self.norm_eps, 0, 1, low_open=True)
        check_float(name, "init_std", self.init_std, 0, 1, low_open=True)
        self.traits = tuple(self.traits)
        unknown = sorted(set(self.traits) - set(TRAITS))
        if unknown or len(set(self.traits)) != len(self.traits):
            raise ValueError(f"{name}.traits must be distinct names from {TRAITS}; "
                             f"got {list(self.traits)}")
        if not isinstance(self.freeze_memories, bool):
            raise ValueError(f"{name}.freeze_memories must be true or false")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def rope_dim(self) -> int:
        return int(round(self.rope_fraction * self.head_dim))

    @property
    def num_oscillators(self) -> int:
        return sum(self.ring_sizes)

    def has(self, trait: str) -> bool:
        return trait in self.traits

    def kv_cache_bytes(self, tokens: int, element_size: int = 4) -> int:
        """Bytes of a KV cache holding `tokens` tokens: the KV heads of every layer."""
        return 2 * tokens * self.num_layers * self.num_kv_heads * self.head_dim * element_size
