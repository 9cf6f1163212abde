"""Transformer baseline: pre-norm blocks of RoPE self-attention and a SwiGLU MLP, KV cache.

Per layer:

    x = x + Attention(RMSNorm₁(x))        # causal, RoPE on q and k (Su et al. 2021), window
    x = x + SwiGLU(RMSNorm₂(x))

Input and output embeddings are tied and no layer has a bias. A query attends to at most the
last ``max_context`` tokens, itself included (a sliding window), so the KV cache of a long
stream stays bounded. The state is a :class:`~assoclm.layers.kv_cache.KVCacheState` with the
same contract as the Propagator's memory: explicit, immutable, serialisable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from assoclm.config import Config, check_float, check_int, flag
from assoclm.layers.attention import CausalSelfAttention
from assoclm.layers.kv_cache import KVCache, KVCacheState
from assoclm.layers.mlp import MLP
from assoclm.models.base import TokenLM


@dataclass
class TransformerConfig(Config):
    """Defaults: the Propagator seed's width and depth (about 28M parameters at a 4,096
    vocabulary, the SwiGLU MLP and the attention being larger than the memory read/write)."""

    vocab_size: int = 4096
    hidden_size: int = flag(512, help="model width")
    num_layers: int = flag(8, help="number of blocks")
    num_heads: int = flag(8, help="attention heads")
    mlp_multiplier: float = flag(4.0, help="MLP hidden width / model width")
    rope_base: float = 10000.0
    max_context: int = flag(2048, help="attention window in tokens (the KV cache size)")
    norm_eps: float = 1e-6
    init_std: float = 0.02

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("vocab_size", "hidden_size", "num_layers", "num_heads", "max_context"):
            check_int(name, field, getattr(self, field))
        if self.hidden_size % self.num_heads:
            raise ValueError(f"{name}.hidden_size={self.hidden_size} must be divisible by "
                             f"num_heads={self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"{name}.hidden_size / num_heads = {self.head_dim} must be even "
                             "(RoPE rotates pairs of channels)")
        check_float(name, "mlp_multiplier", self.mlp_multiplier, 0, 64, low_open=True)
        # base 1 would give every channel pair the same frequency
        check_float(name, "rope_base", self.rope_base, 1, math.inf, low_open=True,
                    high_open=True)
        check_float(name, "norm_eps", self.norm_eps, 0, 1, low_open=True)
        check_float(name, "init_std", self.init_std, 0, 1, low_open=True)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def kv_cache_bytes(self, tokens: int, element_size: int = 4) -> int:
        """Bytes of a KV cache holding `tokens` tokens: keys and values of every layer."""
        return 2 * tokens * self.num_layers * self.hidden_size * element_size


class TransformerBlock(nn.Module):
    """Pre-norm attention and SwiGLU MLP, each on a residual branch. State: one KVCache."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        c = config
        self.norm_attn = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.attn = CausalSelfAttention(c.hidden_size, c.num_heads, c.max_context, c.rope_base)
        self.norm_mlp = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.mlp = MLP(c.hidden_size, c.mlp_multiplier, "swiglu")

    def forward(self, x: torch.Tensor, cache: KVCache,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, KVCache]:
        """x [B, T, D], cache -> (x [B, T, D], cache)."""
        y, cache = self.attn(self.norm_attn(x), cache, rope)
        x = x + y
        return x + self.mlp(self.norm_mlp(x)), cache


class TransformerLM(TokenLM):
    """Token ids -> next-token logits, with an explicit KV-cache state.

    forward(tokens [B, T], state=None) -> (logits [B, T, vocab], state)
    step(token [B], state) -> (logits [B, vocab], state)
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.num_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.apply(self._init_weights)

    def init_state(self, batch_size: int, device=None) -> KVCacheState:
        c = self.config
        device = self.embed.weight.device if device is None else device
        return KVCacheState.empty(c.num_layers, batch_size, c.num_heads, c.head_dim, device,
                                  self.embed.weight.dtype)

    def _run_blocks(self, x: torch.Tensor, state: KVCacheState
                    ) -> tuple[torch.Tensor, KVCacheState]:
        # x [B, T, D]; the rotary angles of these T positions are shared by all layers
        rope = self.blocks[0].attn.rotary(state.tokens_seen, x.shape[1], x.device)
        caches = []
        for block, cache in zip(self.blocks, state.layers):
            x, cache = block(x, cache, rope)
            caches.append(cache)
        return self._logits(x), KVCacheState(tuple(caches))

    def forward(self, tokens: torch.Tensor, state: KVCacheState | None = None
                ) -> tuple[torch.Tensor, KVCacheState]:
        state = self._check(tokens, state, time_axis=True)
        return self._run_blocks(self.embed(tokens), state)

    def step(self, token: torch.Tensor, state: KVCacheState | None = None
             ) -> tuple[torch.Tensor, KVCacheState]:
        state = self._check(token, state, time_axis=False)
        logits, state = self._run_blocks(self.embed(token)[:, None], state)
        return logits[:, 0], state
