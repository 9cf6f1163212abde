"""Causal multi-head self-attention with rotary positions, a sliding window and a KV cache.

Rotary position embedding (RoPE; Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary
Position Embedding", arXiv 2104.09864): the query and key of the token at absolute position m
are rotated, in each plane (x_i, x_{i + Dh/2}) for i < Dh/2, by the angle m·θ_i with
θ_i = base^(−2i/Dh). A rotated query·key product then depends only on the distance between
the two tokens, so positions can be absolute token counts shared by all lanes of a batch.

Grouped-query attention (GQA; Ainslie et al. 2023, arXiv 2305.13245): with ``num_kv_heads``
< ``num_heads``, each key/value head serves ``num_heads / num_kv_heads`` query heads. The
cache stores only the key/value heads; SDPA shares them among the query heads
(``enable_gqa``). QK-norm (Dehghani et al. 2023, arXiv 2302.05442; as in OLMo 2 and Qwen3):
an RMSNorm over each head's query and key, before RoPE, bounds the attention logits.

Partial RoPE (``rope_dim`` < Dh; as in DeepSeek-V2, arXiv 2405.04434, and GLM): only the
last ``rope_dim`` channels of each head are rotated; the first Dh − rope_dim carry no
position, so part of every head can match content at any distance.
:class:`LowRankAttention` adds MLA-style low-rank query and output projections (DeepSeek-V2's
multi-head latent attention compresses the query through a rank-r latent with an RMSNorm).

Masking: the query at absolute position i of lane b attends to keys j with j <= i,
i − j < window (a sliding window that includes the query itself) and j >= start[b] (the
lane's last reset). Attention runs through ``F.scaled_dot_product_attention``: with no mask
when none is needed (one decoded token and no reset lane in view, the fast path), with
``is_causal=True`` for a fresh sequence within the window, with a boolean mask otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.layers.kv_cache import KVCache


def rope_angles(positions: torch.Tensor, head_dim: int, base: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """positions [T] (integer) -> (cos, sin), each [T, head_dim / 2] in float32.

    The angles are formed in float64 where the device has it: position·θ_i loses about
    position·2⁻²⁴ radians in float32, which is visible at tens of thousands of tokens.
    """
    wide = torch.float32 if positions.device.type == "mps" else torch.float64
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=wide) / head_dim
    angles = positions.to(wide)[:, None] * base ** -exponents
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., T, Dh] by (cos, sin) [T, Dh / 2]: plane (x_i, x_{i + Dh/2}) by angle i."""
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)


def attention_mask(num_queries: int, num_past: int, window: int, first_position: int,
                   start: torch.Tensor, start_max: int) -> tuple[torch.Tensor | None, bool]:
    """The SDPA mask for T = num_queries new tokens after num_past cached ones.

    Keys are the num_past cached entries followed by the T new ones, the first at absolute
    position ``first_position``; start [B] long is each lane's first visible position and
    start_max its maximum (a host int, so that no device sync is needed).
    Returns (mask, is_causal): mask None, or bool (True = attend) of shape [T, S] or, when a
    lane's start hides cached keys, [B, 1, T, S], with S = num_past + T.
    """
    T, S = num_queries, num_past + num_queries
    hides_cached = start_max > first_position
    if not hides_cached and S <= window:
        if T == 1:
            return None, False
        if num_past == 0:
            return None, True
    keys = torch.arange(S, device=start.device)
    # distance from each query to each key, in tokens: [T, S]
    distance = torch.arange(num_past, S, device=start.device)[:, None] - keys
    mask = (distance >= 0) & (distance < window)
    if hides_cached:
        mask = mask & (keys + first_position >= start[:, None, None, None])
    return mask, False


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with RoPE over an explicit KV cache. No biases.

    forward(x [B, T, D], cache) -> (y [B, T, D], cache)
    step(x [B, D], cache) -> (y [B, D], cache)

    num_kv_heads: key/value heads (GQA), a divisor of num_heads; None = num_heads. The cache
    holds [B, num_kv_heads, N, Dh]. qk_norm: RMSNorm (eps ``norm_eps``) over each head's
    query and key before RoPE. With the defaults the parameters are exactly ``qkv`` [3D, D]
    and ``out`` [D, D].
    """

    def __init__(self, dim: int, num_heads: int, window: int, rope_base: float = 10000.0,
                 num_kv_heads: int | None = None, qk_norm: bool = False,
                 norm_eps: float = 1e-6, rope_dim: int | None = None):
        super().__init__()
        if dim % num_heads or (dim // num_heads) % 2:
            raise ValueError(f"attention dim {dim} must split into {num_heads} heads of an "
                             f"even size (RoPE rotates pairs)")
        head_dim = dim // num_heads
        rope_dim = head_dim if rope_dim is None else rope_dim
        if not 0 < rope_dim <= head_dim or rope_dim % 2:
            raise ValueError(f"rope_dim must be even and in (0, head_dim={head_dim}]; "
                             f"got {rope_dim}")
        if window < 1:
            raise ValueError(f"attention window must be >= 1; got {window}")
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_kv_heads < 1 or num_heads % num_kv_heads:
            raise ValueError(f"num_kv_heads must be a divisor of num_heads={num_heads}; "
                             f"got {num_kv_heads}")
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.rope_dim = rope_dim
        self.window = window
        self.rope_base = rope_base
        self._init_projections(dim)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=norm_eps) if qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim, eps=norm_eps) if qk_norm else None

    def _init_projections(self, dim: int) -> None:
        # rows [q | k | v]: D query channels, then Hkv·Dh key and Hkv·Dh value channels
        self.qkv = nn.Linear(dim, dim + 2 * self.num_kv_heads * self.head_dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [B, T, D] -> q [B, H, T, Dh], k, v [B, Hkv, T, Dh]."""
        B, T, _ = x.shape
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        # (B, T, (H + 2·Hkv)·Dh) -> (B, H + 2·Hkv, T, Dh)
        return self.qkv(x).view(B, T, H + 2 * Hkv, Dh).transpose(1, 2).split(
            (H, Hkv, Hkv), dim=1)

    def output(self, y: torch.Tensor) -> torch.Tensor:
        """y [B, T, H·Dh] (the heads side by side) -> [B, T, D]."""
        return self.out(y)

    def _rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        # partial RoPE: the first Dh − rope_dim channels carry no position
        if self.rope_dim == self.head_dim:
            return apply_rope(x, cos, sin)
        plain, rotated = x.split((self.head_dim - self.rope_dim, self.rope_dim), dim=-1)
        return torch.cat((plain, apply_rope(rotated, cos, sin)), dim=-1)

    def rotary(self, first_position: int, num_tokens: int, device=None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin) [T, rope_dim / 2] for the tokens at first_position, ...,
        first_position + num_tokens − 1."""
        positions = torch.arange(first_position, first_position + num_tokens, device=device)
        return rope_angles(positions, self.rope_dim, self.rope_base)

    def forward(self, x: torch.Tensor, cache: KVCache,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, KVCache]:
        """x [B, T, D], cache -> (y [B, T, D], cache extended by T tokens).

        rope: (cos, sin) [T, rope_dim / 2] for positions cache.tokens_seen, ...; a model passes
        them in so that its layers share one computation.
        """
        B, T, _ = x.shape
        H, Hkv = self.num_heads, self.num_kv_heads
        q, k, v = self.project(x)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        cos, sin = self.rotary(cache.tokens_seen, T, x.device) if rope is None else rope
        q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
        num_past, first_position = cache.length, cache.first_position
        cache, keys, values = cache.append(k, v, keep=self.window - 1)
        mask, is_causal = attention_mask(T, num_past, self.window, first_position,
                                         cache.start, cache.start_max)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=is_causal,
                                           enable_gqa=Hkv != H)
        return self.output(y.transpose(1, 2).reshape(B, T, H * self.head_dim)), cache

    def step(self, x: torch.Tensor, cache: KVCache,
             rope: tuple[torch.Tensor, torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, KVCache]:
        """One token: x [B, D], cache -> (y [B, D], cache)."""
        y, cache = self(x[:, None], cache, rope)
        return y[:, 0], cache


class LowRankAttention(CausalSelfAttention):
    """:class:`CausalSelfAttention` whose query and output projections are low rank (MLA-style):

        q = W_qb · RMSNorm(W_qa · x)        W_qa [r, D], W_qb [H·Dh, r]
        y = W_ob · (W_oa · heads)           W_oa [r, H·Dh], W_ob [D, r]

    Keys and values keep a full projection ``kv`` [2·Hkv·Dh, D], so the KV cache per GQA
    group is the same as the parent's. Set ``rank`` to None for a full-rank query/output.
    """

    def __init__(self, dim: int, num_heads: int, window: int, rope_base: float = 10000.0,
                 num_kv_heads: int | None = None, qk_norm: bool = True,
                 norm_eps: float = 1e-6, rope_dim: int | None = None,
                 rank: int | None = None):
        if rank is not None and (not isinstance(rank, int) or rank < 1):
            raise ValueError(f"rank must be a positive integer or None; got {rank!r}")
        self.rank = rank
        self.norm_eps = norm_eps
        super().__init__(dim, num_heads, window, rope_base, num_kv_heads, qk_norm, norm_eps,
                         rope_dim)

    def _init_projections(self, dim: int) -> None:
        inner = self.num_heads * self.head_dim
        self.kv = nn.Linear(dim, 2 * self.num_kv_heads * self.head_dim, bias=False)
        if self.rank is None:
            self.q_proj = nn.Linear(dim, inner, bias=False)
            self.out = nn.Linear(inner, dim, bias=False)
        else:
            self.q_proj = nn.Sequential(nn.Linear(dim, self.rank, bias=False),
                                        nn.RMSNorm(self.rank, eps=self.norm_eps),
                                        nn.Linear(self.rank, inner, bias=False))
            self.out = nn.Sequential(nn.Linear(inner, self.rank, bias=False),
                                     nn.Linear(self.rank, dim, bias=False))

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.q_proj(x).view(B, T, H, Dh).transpose(1, 2)
        k, v = self.kv(x).view(B, T, 2 * Hkv, Dh).transpose(1, 2).split((Hkv, Hkv), dim=1)
        return q, k, v
