"""Recurrent-depth model: GQA / QK-norm attention against references, streaming equivalence
at train and test depths, the depth dial's contract, truncated backprop, depth sampling,
parameter counts and config validation."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from assoclm.layers.attention import CausalSelfAttention
from assoclm.layers.kv_cache import KVCache, KVCacheState
from assoclm.models import MODELS, build_model
from assoclm.models.recurrent_depth import RecurrentDepthConfig, RecurrentDepthLM
from assoclm.testing import assert_rel_close, assert_streaming_equivalence

TOL32 = 1e-5


def tiny(**kw) -> RecurrentDepthLM:
    torch.manual_seed(0)
    # init_std well above the default so that attention is far from uniform
    cfg = dict(vocab_size=37, hidden_size=32, num_heads=4, num_kv_heads=2, mlp_multiplier=2.0,
               rope_base=100.0, train_depth=3, max_depth=8, init_std=0.2)
    cfg.update(kw)
    return RecurrentDepthLM(RecurrentDepthConfig(**cfg)).eval()


def tokens(B=3, T=23, vocab=37, seed=0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- attention options
def test_default_attention_keeps_its_parameters():
    attn = CausalSelfAttention(dim=24, num_heads=3, window=10)
    shapes = {n: tuple(p.shape) for n, p in attn.named_parameters()}
    assert shapes == {"qkv.weight": (72, 24), "out.weight": (24, 24)}


def test_gqa_equals_full_attention_with_repeated_kv_heads():
    torch.manual_seed(0)
    D, H, Hkv, Dh = 24, 6, 2, 4
    gqa = CausalSelfAttention(D, H, window=5, rope_base=50.0, num_kv_heads=Hkv)
    for p in gqa.parameters():
        torch.nn.init.normal_(p, std=0.3)
    full = CausalSelfAttention(D, H, window=5, rope_base=50.0)
    wq, wk, wv = gqa.qkv.weight.split((D, Hkv * Dh, Hkv * Dh))
    # each KV head serves H / Hkv consecutive query heads
    repeat = H // Hkv
    wk = wk.view(Hkv, Dh, D).repeat_interleave(repeat, 0).reshape(D, D)
    wv = wv.view(Hkv, Dh, D).repeat_interleave(repeat, 0).reshape(D, D)
    with torch.no_grad():
        full.qkv.weight.copy_(torch.cat((wq, wk, wv)))
        full.out.weight.copy_(gqa.out.weight)
        x = torch.randn(2, 11, D)
        y_gqa, c_gqa = gqa(x, KVCache.empty(2, Hkv, Dh))
        y_full, _ = full(x, KVCache.empty(2, H, Dh))
    assert_rel_close(y_gqa, y_full, TOL32, "GQA vs repeated KV heads")
    # the cache holds only the KV heads
    assert c_gqa.keys.shape == (2, Hkv, 4, Dh)


def test_qk_norm_normalises_each_head_before_rope():
    torch.manual_seed(0)
    D, H, Dh, T = 16, 2, 8, 9
    attn = CausalSelfAttention(D, H, window=100, rope_base=100.0, qk_norm=True, norm_eps=1e-6)
    with torch.no_grad():
        attn.q_norm.weight.copy_(torch.linspace(0.5, 2.0, Dh))
        attn.k_norm.weight.copy_(torch.linspace(2.0, 0.5, Dh))
        for p in (attn.qkv.weight, attn.out.weight):
            torch.nn.init.normal_(p, std=0.3)
        x = torch.randn(1, T, D)
        y, _ = attn(x, KVCache.empty(1, H, Dh))
        # the reference: RMS-normalise each head's q and k by hand, then attend in float64
        q, k, v = (x @ attn.qkv.weight.T).view(1, T, 3, H, Dh).unbind(2)

        def rms(t, w):
            return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * w

        q, k = rms(q, attn.q_norm.weight), rms(k, attn.k_norm.weight)
        expected = _attend(q, k, v, base=100.0) @ attn.out.weight.T
    assert_rel_close(y, expected, TOL32, "QK-norm attention")


def _attend(q, k, v, base):
    """Causal softmax attention with RoPE, in float64: q, k, v [B, T, H, Dh] -> [B, T, H·Dh]."""
    B, T, H, Dh = q.shape
    half = Dh // 2
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    ang = pos * base ** (-torch.arange(0, Dh, 2, dtype=torch.float64) / Dh)
    cos, sin = ang.cos()[None, :, None], ang.sin()[None, :, None]

    def rot(t):
        t = t.double()
        a, b = t[..., :half], t[..., half:]
        return torch.cat((a * cos - b * sin, a * sin + b * cos), -1)

    q, k = rot(q), rot(k)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(Dh)
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf)
    out = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v.double())
    return out.flatten(2).float()


def test_gqa_rejects_a_non_divisor():
    with pytest.raises(ValueError, match="num_kv_heads must be a divisor of num_heads=4; got 3"):
        CausalSelfAttention(16, 4, window=8, num_kv_heads=3)


# --------------------------------------------------------------------------- model
STREAMING = [
    pytest.param(dict(), id="tied-gqa-qknorm"),
    pytest.param(dict(window=5), id="tied-window5"),
    pytest.param(dict(moe_experts=3, moe_top_k=2, num_kv_heads=1), id="tied-moe-mqa"),
    pytest.param(dict(tied=False, injection="none", qk_norm=False), id="untied"),
]


@pytest.mark.parametrize("kw", STREAMING)
def test_streaming_equivalence_full_chunks_steps(kw):
    model = tiny(**kw)
    x = tokens(T=23)
    s_full, s_chunk, s_step = assert_streaming_equivalence(
        model, x, [0, 1, 2, 9, 10, 17, 23], TOL32, str(kw))
    assert s_full.num_layers == s_chunk.num_layers == s_step.num_layers == 3
    for i in range(3):
        assert_rel_close(s_chunk.keys[i], s_full.keys[i], TOL32, f"chunked keys {i}")
        assert_rel_close(s_step.values[i], s_full.values[i], TOL32, f"step values {i}")


@pytest.mark.parametrize("depth", [1, 7])
def test_streaming_equivalence_at_a_test_depth_other_than_training(depth):
    model = tiny()
    x = tokens(B=2, T=13, seed=1)
    with torch.no_grad():
        full, s_full = model(x, depth=depth)
        a, state = model(x[:, :6], depth=depth)
        # the state carries the depth: no depth argument needed afterwards
        b, state = model(x[:, 6:12], state)
        c, state = model.step(x[:, 12], state)
    assert s_full.num_layers == state.num_layers == depth
    assert_rel_close(torch.cat((a, b, c[:, None]), 1), full, TOL32, f"depth {depth}")


def test_depth_changes_the_output_and_the_state():
    model = tiny()
    x = tokens(B=2, T=9)
    with torch.no_grad():
        outs = {d: model(x, depth=d)[0] for d in (1, 2, 3, 12)}
    for a, b in ((1, 2), (2, 3), (3, 12)):
        assert (outs[a] - outs[b]).abs().max() > 1e-3, f"depth {a} and {b} gave the same logits"
    # eval mode without a depth runs at train_depth
    assert torch.equal(model(x)[0], outs[3])


def test_depth_and_state_must_agree_and_untied_runs_only_at_its_depth():
    model = tiny()
    x = tokens(B=2, T=5)
    _, state = model(x, depth=4)
    with pytest.raises(ValueError, match="depth=2 does not match the state.*4 iterations"):
        model(x, state, depth=2)
    with pytest.raises(ValueError, match="depth must be an integer >= 1; got 0"):
        model(x, depth=0)
    untied = tiny(tied=False)
    with pytest.raises(ValueError, match="untied model has 3 blocks.*got depth=5"):
        untied(x, depth=5)
    with pytest.raises(ValueError, match="state has batch 2; the tokens batch is 1"):
        model(x[:1], state)
    with pytest.raises(ValueError, match="integer tensor of shape \\[B\\]"):
        model.step(x, state)


def test_untied_has_depth_times_the_block_parameters():
    tied, untied = tiny(train_depth=16, max_depth=16), tiny(train_depth=16, max_depth=16,
                                                           tied=False)
    block = sum(p.numel() for p in tied.blocks[0].parameters())
    shared = tied.num_parameters() - block
    assert len(tied.blocks) == 1 and len(untied.blocks) == 16
    assert untied.num_parameters() == shared + 16 * block
    # every block of the untied stack has its own weights
    first, second = untied.blocks[0].attn.qkv.weight, untied.blocks[1].attn.qkv.weight
    assert first.data_ptr() != second.data_ptr()


def test_a_reset_lane_equals_a_fresh_start():
    model = tiny(window=6)
    x = tokens(B=2, T=14, seed=2)
    with torch.no_grad():
        _, state = model(x[:, :8], depth=4)
        state = state.reset(torch.tensor([True, False]))
        after, _ = model(x[:, 8:], state)
        fresh, _ = model(x[:1, 8:], depth=4)
        whole, _ = model(x[1:], depth=4)
    assert_rel_close(after[:1], fresh, TOL32, "reset lane")
    assert_rel_close(after[1:], whole[:, 8:], TOL32, "kept lane")


def test_state_round_trips_through_safetensors(tmp_path):
    model = tiny()
    x = tokens(B=2, T=10)
    with torch.no_grad():
        _, state = model(x[:, :7], depth=5)
        save_file(state.state_dict(), tmp_path / "state.safetensors")
        loaded = KVCacheState.from_state_dict(load_file(tmp_path / "state.safetensors"))
        a, _ = model(x[:, 7:], state)
        b, _ = model(x[:, 7:], loaded)
    assert loaded.num_layers == 5
    assert torch.equal(a, b)


def test_truncated_backprop_keeps_the_forward_and_changes_the_gradient():
    x = tokens(B=2, T=9)
    grads, logits = {}, {}
    for k in (0, 1):
        model = tiny(backprop_depth=k).train()
        out, _ = model(x, depth=5)
        out.square().mean().backward()
        logits[k] = out.detach()
        grads[k] = model.blocks[0].mlp.up.weight.grad.clone()
        assert all(p.grad is not None and torch.isfinite(p.grad).all()
                   for p in model.parameters())
    assert torch.equal(logits[0], logits[1])
    assert (grads[0] - grads[1]).norm() > 1e-3 * grads[0].norm()


def test_truncated_backprop_equals_a_detached_prefix():
    # k = 1: the gradient is that of one block applied to a constant latent
    model = tiny(backprop_depth=1).train()
    x = tokens(B=2, T=9)
    out, _ = model(x, depth=4)
    out.square().mean().backward()
    got = model.blocks[0].mlp.down.weight.grad.clone()
    model.zero_grad()
    with torch.no_grad():
        e = model.embed(x)
        z = torch.zeros_like(e)
        state = model.init_state(2, depth=4)
        rope = model.blocks[0].attn.rotary(0, 9)
        for cache in state.layers[:3]:
            z, _ = model.blocks[0](model.adapter(torch.cat((z, e), -1)), cache, rope)
    e = model.embed(x)
    z, _ = model.blocks[0](model.adapter(torch.cat((z, e), -1)), state.layers[3], rope)
    model._logits(z).square().mean().backward()
    assert_rel_close(got, model.blocks[0].mlp.down.weight.grad, TOL32, "k=1 gradient")


def test_training_depth_draws_have_the_configured_mean():
    model = tiny(train_depth=6, max_depth=1000, depth_sigma=0.5).train()
    torch.manual_seed(0)
    draws = [model.sample_depth() for _ in range(4000)]
    mean = sum(draws) / len(draws)
    assert min(draws) >= 1 and abs(mean - 6) < 0.2, f"mean draw {mean:.3f}, want 6"
    assert len(set(draws)) > 5
    capped = tiny(train_depth=6, max_depth=7).train()
    assert max(capped.sample_depth() for _ in range(500)) == 7
    assert tiny(train_depth=6, depth_sampling="fixed").train().sample_depth() == 6
    # a training forward without a depth uses a draw; eval uses train_depth
    _, state = tiny(train_depth=6, max_depth=64).eval()(tokens(T=3))
    assert state.num_layers == 6


def test_registered_and_buildable_from_a_dict():
    spec = MODELS["recurrent_depth"]
    assert (spec.config, spec.model) == (RecurrentDepthConfig, RecurrentDepthLM)
    model = build_model("recurrent_depth", {"vocab_size": 11, "hidden_size": 16,
                                            "num_heads": 2, "num_kv_heads": 1})
    assert isinstance(model, RecurrentDepthLM)


@pytest.mark.parametrize("changes, message", [
    (dict(num_kv_heads=3), "num_kv_heads=3 must divide num_heads=4"),
    (dict(hidden_size=20), "hidden_size=20 must split into num_heads=4"),
    (dict(moe_experts=2, moe_top_k=3), "moe_top_k=3 must be <= moe_experts=2"),
    (dict(train_depth=0), "train_depth must be an integer >= 1; got 0"),
    (dict(train_depth=9, max_depth=8), "max_depth=8 must be >= train_depth=9"),
    (dict(window=-1), "window must be an integer >= 0; got -1"),
    (dict(tied="yes"), "tied must be true or false; got 'yes'"),
    (dict(injection="add"), "injection must be one of ('adapter', 'none'); got 'add'"),
    (dict(depth_sampling="uniform"), "depth_sampling must be one of"),
    (dict(backprop_depth=-1), "backprop_depth must be an integer >= 0"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RecurrentDepthConfig(**changes)


def test_config_rejects_unknown_keys_and_round_trips():
    cfg = RecurrentDepthConfig(window=0, moe_experts=4)
    assert RecurrentDepthConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown key"):
        RecurrentDepthConfig.from_dict({"depth": 4})
