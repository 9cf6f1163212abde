"""Transformer baseline: config, attention against a naive reference, streaming equivalence,
the KV-cache state (reset, branching, immutability, serialisation, size)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from assoclm.layers.attention import CausalSelfAttention
from assoclm.layers.kv_cache import KVCache, KVCacheState
from assoclm.models.transformer import TransformerConfig, TransformerLM
from assoclm.testing import assert_rel_close

TOL32 = 1e-5
# (sequence length, max_context): within the window, and well past a small window
WINDOWS = [pytest.param(19, 64, id="T19-W64"), pytest.param(37, 8, id="T37-W8")]


def tiny(**kw) -> TransformerLM:
    torch.manual_seed(0)
    # init_std well above the default so that attention is far from uniform
    cfg = dict(vocab_size=50, hidden_size=32, num_layers=2, num_heads=4, mlp_multiplier=2.0,
               max_context=64, rope_base=100.0, init_std=0.2)
    cfg.update(kw)
    return TransformerLM(TransformerConfig(**cfg)).eval()


def tokens(B=3, T=37, vocab=50, seed=0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


def feed(model, x, state=None, cuts=None):
    """Logits [B, T, V] for x fed in chunks between `cuts` (or token by token), and the state."""
    parts = []
    if cuts is None:
        for t in range(x.shape[1]):
            logits, state = model.step(x[:, t], state)
            parts.append(logits[:, None])
    else:
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            logits, state = model(x[:, lo:hi], state)
            parts.append(logits)
    return torch.cat(parts, 1), state


# --------------------------------------------------------------------------- attention layer
def rotation(position: int, head_dim: int, base: float) -> torch.Tensor:
    """The RoPE rotation [Dh, Dh] of one position, written out plane by plane."""
    half = head_dim // 2
    R = torch.zeros(head_dim, head_dim, dtype=torch.float64)
    for i in range(half):
        angle = position * base ** (-2 * i / head_dim)
        c, s = math.cos(angle), math.sin(angle)
        R[i, i], R[i, i + half] = c, -s
        R[i + half, i], R[i + half, i + half] = s, c
    return R


def naive_attention(attn: CausalSelfAttention, x: torch.Tensor, start: list[int]) -> torch.Tensor:
    """softmax(QKᵀ/√d + mask)V per lane and head in float64; x [B, T, D] from position 0."""
    B, T, D = x.shape
    H, Dh = attn.num_heads, attn.head_dim
    q, k, v = (x.double() @ attn.qkv.weight.double().T).split(D, dim=-1)
    q, k, v = (t.view(B, T, H, Dh) for t in (q, k, v))
    R = torch.stack([rotation(m, Dh, attn.rope_base) for m in range(T)])
    q = torch.einsum("tde,bthe->bthd", R, q)
    k = torch.einsum("tde,bthe->bthd", R, k)
    out = torch.zeros(B, T, H, Dh, dtype=torch.float64)
    for b in range(B):
        for i in range(T):
            scores = torch.einsum("hd,jhd->hj", q[b, i], k[b]) / math.sqrt(Dh)
            j = torch.arange(T)
            visible = (j <= i) & (i - j < attn.window) & (j >= start[b])
            scores = scores.masked_fill(~visible, -math.inf)
            out[b, i] = torch.einsum("hj,jhd->hd", scores.softmax(-1), v[b])
    return out.flatten(2) @ attn.out.weight.double().T


@pytest.mark.parametrize("window", [4, 100])
def test_attention_matches_naive_softmax_reference(window):
    torch.manual_seed(0)
    attn = CausalSelfAttention(dim=16, num_heads=2, window=window, rope_base=100.0)
    for p in attn.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 15, 16)
    with torch.no_grad():
        # the whole sequence at once
        full, _ = attn(x, KVCache.empty(2, 2, 8))
        assert_rel_close(full, naive_attention(attn, x, [0, 0]), TOL32, "full sequence")
        # 9 tokens, lane 1 reset, then a chunk of 5 and one step
        _, cache = attn(x[:, :9], KVCache.empty(2, 2, 8))
        cache = KVCacheState((cache,)).reset(torch.tensor([False, True])).layers[0]
        chunk, cache = attn(x[:, 9:14], cache)
        last, _ = attn.step(x[:, 14], cache)
    expected = naive_attention(attn, x, [0, 9])[:, 9:]
    assert_rel_close(torch.cat([chunk, last[:, None]], 1), expected, TOL32, "after a reset")


# --------------------------------------------------------------------------- model
@pytest.mark.parametrize("T, window", WINDOWS)
def test_streaming_equivalence_full_chunks_steps(T, window):
    model = tiny(max_context=window)
    x = tokens(T=T)
    # awkward chunks: 1 token, chunks longer than the small window, a ragged tail
    cuts = sorted({0, 1, 2, 9, 10, T // 2 + 9, T})
    with torch.no_grad():
        full, s_full = model(x)
        chunked, s_chunk = feed(model, x, cuts=cuts)
        stepped, s_step = feed(model, x)
    assert_rel_close(chunked, full, TOL32, f"chunked logits {cuts}")
    assert_rel_close(stepped, full, TOL32, "step logits")
    for s in (s_full, s_chunk, s_step):
        assert (s.tokens_seen, s.length) == (T, min(T, window - 1))
    for i in range(model.config.num_layers):
        for name in ("keys", "values"):
            want = getattr(s_full, name)[i]
            assert_rel_close(getattr(s_chunk, name)[i], want, TOL32, f"chunked {name} {i}")
            assert_rel_close(getattr(s_step, name)[i], want, TOL32, f"step {name} {i}")


def test_cache_carries_information_across_calls():
    # The same suffix after different prefixes must give different logits: the state matters.
    model = tiny()
    with torch.no_grad():
        _, s1 = model(tokens(B=1, T=20, seed=1))
        _, s2 = model(tokens(B=1, T=20, seed=2))
        suffix = tokens(B=1, T=5, seed=3)
        a, _ = model(suffix, s1)
        b, _ = model(suffix, s2)
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("window", [64, 8])
def test_reset_lane_equals_fresh_start_and_keeps_other_lanes(window):
    model = tiny(max_context=window)
    x = tokens(T=12)
    with torch.no_grad():
        _, state = model(tokens(T=30, seed=9))
        before = [k.clone() for k in state.keys]
        reset = state.reset(torch.tensor([True, False, True]))
        carried, _ = feed(model, x, reset, cuts=[0, 5, 6, 12])
        fresh, _ = model(x[[0, 2]])
        kept, _ = feed(model, x, state, cuts=[0, 5, 6, 12])
    assert_rel_close(carried[[0, 2]], fresh, TOL32, "reset lanes vs a fresh state")
    assert_rel_close(carried[1], kept[1], TOL32, "lane 1 was not reset")
    assert (carried[1] - fresh[0]).abs().max() > 1e-3, "the lane that was not reset forgot"
    assert all(torch.equal(a, b) for a, b in zip(before, state.keys)), "reset changed the state"
    assert state.reset(torch.ones(3, dtype=torch.bool)).nbytes == 0
    with pytest.raises(ValueError, match=r"reset mask must be a bool tensor of shape \[3\]"):
        state.reset(torch.tensor([1, 0, 1]))


@pytest.mark.parametrize("window", [64, 8])
def test_branching_from_an_old_state_leaves_its_descendants_intact(window):
    model = tiny(max_context=window)
    prefix = tokens(B=2, T=10, seed=3)
    a, b, c = (tokens(B=2, T=1, seed=s)[:, 0] for s in (4, 5, 6))
    with torch.no_grad():
        _, s = model(prefix)
        logits_a, s1 = model.step(a, s)
        # s was at the tip of its storage: s1 was appended in place, not copied
        assert s1.layers[0].storage is s.layers[0].storage
        saved = [t.clone() for t in s1.keys + s1.values]
        logits_b, s2 = model.step(b, s)
        assert s2.layers[0].storage is not s.layers[0].storage
        logits_c, _ = model.step(c, s1)
        want_ab, _ = model(torch.cat([prefix, b[:, None]], 1))
        want_ac, _ = model(torch.cat([prefix, a[:, None], c[:, None]], 1))
    assert all(torch.equal(t, u) for t, u in zip(saved, s1.keys + s1.values)), \
        "stepping an older state changed a newer one"
    assert_rel_close(logits_b, want_ab[:, -1], TOL32, "branch b")
    assert_rel_close(logits_c, want_ac[:, -1], TOL32, "branch a then c")


def test_decoding_appends_in_place_and_old_states_never_change():
    window = 8
    model = tiny(max_context=window)
    x = tokens(B=2, T=60, seed=7)
    history = []
    with torch.no_grad():
        state = None
        for t in range(x.shape[1]):
            _, state = model.step(x[:, t], state)
            history.append((state, [k.clone() for k in state.keys]))
    storages = {id(s.layers[0].storage) for s, _ in history}
    assert len(storages) <= 6, f"{len(storages)} storages for 60 steps: appends are copying"
    assert max(s.layers[0].storage.capacity for s, _ in history) <= 4 * window
    for t, (s, keys) in enumerate(history):
        assert all(torch.equal(a, b) for a, b in zip(keys, s.keys)), f"state {t} changed"


def test_state_round_trips_through_safetensors(tmp_path):
    model = tiny(max_context=8)
    with torch.no_grad():
        _, state = model(tokens(T=10))
        state = state.reset(torch.tensor([False, True, False]))
        _, state = model(tokens(T=3, seed=1), state)
    save_file(state.state_dict(), tmp_path / "state.safetensors")
    loaded = KVCacheState.from_state_dict(load_file(tmp_path / "state.safetensors"))
    assert (loaded.tokens_seen, loaded.length) == (13, 7)
    assert loaded.start.tolist() == [0, 10, 0]
    x = tokens(T=4, seed=4)
    with torch.no_grad():
        a, _ = model(x, state)
        b, _ = model(x, loaded)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="state dict keys must be"):
        KVCacheState.from_state_dict({"layers.3.keys": torch.zeros(1, 1, 1, 2)})
    bad = dict(state.state_dict(), start=torch.tensor([0, 14, 0]))
    with pytest.raises(ValueError, match=r"start positions must lie in \[0, tokens_seen=13\]"):
        KVCacheState.from_state_dict(bad)


def test_nbytes_grows_with_the_context_and_is_bounded_by_the_window():
    model = tiny(max_context=8)
    # 2 layers × (keys + values) × 3 lanes × 4 heads × head size 8 × 4 bytes, per token
    per_token = 2 * 2 * 3 * 4 * 8 * 4
    assert model.init_state(3).nbytes == 0
    with torch.no_grad():
        sizes = [model(tokens(T=T))[1].nbytes for T in (1, 3, 7, 8, 40)]
        _, state = model(tokens(T=40))
        for t in range(5):
            _, state = model.step(tokens(T=1, seed=t)[:, 0], state)
    assert sizes == [per_token * n for n in (1, 3, 7, 7, 7)]
    assert state.nbytes == 7 * per_token


def test_every_parameter_gets_a_finite_gradient_through_a_carried_state():
    model = tiny(max_context=8).train()
    x, y = tokens(T=20), tokens(T=20, seed=5)
    first, state = model(x[:, :12])
    # the carried state is still in the graph: no in-place write may break the backward pass
    second, state = model(x[:, 12:], state)
    assert state.keys[0].requires_grad and not state.detach().keys[0].requires_grad
    logits = torch.cat([first, second], 1)
    F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient reached {missing}"
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients in {bad}"


def test_to_converts_a_copy_and_detach_keeps_values():
    model = tiny()
    with torch.no_grad():
        _, state = model(tokens(T=5))
    wide = state.to(dtype=torch.float64)
    assert wide.keys[0].dtype == torch.float64 and state.keys[0].dtype == torch.float32
    assert torch.equal(wide.keys[1].float(), state.keys[1])
    assert state.detach() is not None and torch.equal(state.detach().values[0], state.values[0])


def test_default_config_is_about_28m_parameters():
    n = TransformerLM(TransformerConfig()).num_parameters()
    assert 26e6 < n < 30e6, f"{n / 1e6:.2f}M parameters"


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 0}, "hidden_size must be an integer >= 1"),
    ({"num_heads": 3}, "hidden_size=512 must be divisible by num_heads=3"),
    ({"hidden_size": 24, "num_heads": 8}, "hidden_size / num_heads = 3 must be even"),
    ({"max_context": 0}, "max_context must be an integer >= 1"),
    ({"mlp_multiplier": 0.0}, "mlp_multiplier must be a number in (0, 64]"),
    ({"rope_base": 1.0}, "rope_base must be a number in (1, inf)"),
    ({"norm_eps": 0.0}, "norm_eps must be a number in (0, 1]"),
    ({"init_std": -0.1}, "init_std must be a number in (0, 1]"),
    ({"num_layers": 2.5}, "num_layers must be an integer >= 1"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError) as info:
        TransformerConfig(**changes)
    assert message in str(info.value)


def test_config_rejects_unknown_keys_and_round_trips():
    cfg = TransformerConfig(hidden_size=64, num_heads=4, max_context=128)
    assert TransformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['num_head'\]"):
        TransformerConfig.from_dict({"num_head": 4})


def test_bad_tokens_and_mismatched_state_fail_clearly():
    model = tiny()
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor of shape \[B, T\]"):
        model(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor of shape \[B\]"):
        model.step(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="state has 2 layers and batch 3"):
        model(tokens(B=2, T=4), model.init_state(3))
