"""Low-rank, partial-RoPE, GQA attention (LowRankAttention) against a naive float64
reference, and partial RoPE leaving the position-free channels unrotated."""

from __future__ import annotations

import math

import torch

from assoclm.layers.attention import LowRankAttention
from assoclm.layers.kv_cache import KVCache
from assoclm.testing import assert_rel_close

TOL32 = 1e-5


def naive_low_rank_attention(attn: LowRankAttention, x: torch.Tensor) -> torch.Tensor:
    """Float64, per head: q = W_qb RMSNorm(W_qa x), GQA, QK-norm, RoPE on the last rope_dim
    channels only, causal softmax, low-rank output."""
    B, T, D = x.shape
    H, Hkv, Dh, rd = attn.num_heads, attn.num_kv_heads, attn.head_dim, attn.rope_dim
    attn = attn.double()
    x = x.double()
    q = attn.q_proj(x).view(B, T, H, Dh)
    k, v = attn.kv(x).view(B, T, 2, Hkv, Dh).unbind(2)
    q, k = attn.q_norm(q), attn.k_norm(k)

    def rope(t):
        plain, rot = t[..., :Dh - rd], t[..., Dh - rd:]
        half = rd // 2
        freq = attn.rope_base ** (-torch.arange(half, dtype=torch.float64) * 2 / rd)
        ang = torch.arange(T, dtype=torch.float64)[:, None] * freq        # [T, half]
        c, s = ang.cos()[:, None], ang.sin()[:, None]
        r1, r2 = rot[..., :half], rot[..., half:]
        return torch.cat((plain, r1 * c - r2 * s, r1 * s + r2 * c), -1)
    q, k = rope(q), rope(k)
    group = H // Hkv
    out = torch.zeros(B, T, H, Dh, dtype=torch.float64)
    for h in range(H):
        scores = torch.einsum("btd,bsd->bts", q[:, :, h], k[:, :, h // group]) / math.sqrt(Dh)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf)
        out[:, :, h] = scores.softmax(-1) @ v[:, :, h // group]
    return attn.out(out.flatten(2))


def test_low_rank_partial_rope_gqa_attention_matches_naive():
    torch.manual_seed(0)
    attn = LowRankAttention(48, num_heads=6, window=64, rope_base=100.0, num_kv_heads=2,
                            rope_dim=4, rank=12)
    for p in attn.parameters():
        if p.dim() == 2:
            torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 11, 48)
    with torch.no_grad():
        fast, cache = attn(x, KVCache.empty(2, 2, 8))
        expected = naive_low_rank_attention(attn, x)
    assert_rel_close(fast, expected.float(), TOL32, "low-rank attention")
    # the cache holds only the 2 KV heads (one per GQA group)
    assert cache.keys.shape == (2, 2, 11, 8)
    # shapes of the low-rank projections
    assert [m.weight.shape for m in attn.q_proj if hasattr(m, "weight") and m.weight.dim() == 2] \
        == [(12, 48), (48, 12)]


def test_partial_rope_leaves_the_position_free_half_unrotated():
    attn = LowRankAttention(16, num_heads=2, window=64, num_kv_heads=1, rope_dim=4, rank=None)
    x = torch.randn(1, 2, 3, 8)       # [B, H, T, Dh]
    cos, sin = attn.rotary(5, 3)
    y = attn._rotate(x, cos, sin)
    assert torch.equal(y[..., :4], x[..., :4]) and not torch.allclose(y[..., 4:], x[..., 4:])
