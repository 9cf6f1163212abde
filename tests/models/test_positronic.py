"""Positronic: the QuazimotoBlock, low-rank/partial-RoPE/GQA attention against a naive
reference, streaming equivalence, cached greedy decoding against full recomputation, the
training objective (z-loss, draft heads), self-speculative decoding against greedy, state."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from assoclm.layers.attention import LowRankAttention
from assoclm.layers.quazimoto import QuazimotoBlock, soft_clamp
from assoclm.models import build_model
from assoclm.models.kv_cache import KVCache
from assoclm.models.positronic import PositronicConfig, PositronicLM, PositronicState
from assoclm.ops.kuramoto import integrate_kuramoto
from assoclm.testing import assert_rel_close, assert_streaming_equivalence

TOL32 = 1e-5


def tiny(**kw) -> PositronicLM:
    torch.manual_seed(0)
    cfg = dict(vocab_size=61, hidden_size=48, num_layers=2, num_heads=6, num_kv_heads=2,
               attn_rank=16, ring_sizes=(4, 8, 16), max_context=128, rope_base=100.0,
               mtp_heads=3, init_std=0.1)
    cfg.update(kw)
    return PositronicLM(PositronicConfig(**cfg)).eval()


def tokens(B=2, T=30, vocab=61, seed=0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------- QuazimotoBlock
def test_quazimoto_block_is_the_documented_computation():
    torch.manual_seed(0)
    block = QuazimotoBlock(24, ring_sizes=(4, 8), osc_steps=3, dt=0.5, center_omega=0.2)
    for p in block.parameters():
        if p.dim() == 2 and p.shape != (2, 2):
            torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        y = block(x)
        h = block.norm(x)
        w_theta, w_omega, w_u = block.phase_in.weight.chunk(3, dim=0)
        ring = torch.tensor([0] * 4 + [1] * 8)
        theta = integrate_kuramoto(h @ w_theta.T, torch.tanh(h @ w_omega.T), block.ring_gain,
                                   (4, 8), 3, 0.5, block.frustration, 0.2, block.center_gain,
                                   torch.tanh(h @ w_u.T) * block.drive_gain[ring])
        feats = torch.cat((theta.cos(), theta.sin()), -1)
        ref = block.read_out(F.gelu(block.read_in(feats))) * 0.9
        ref = 10 * torch.erf(ref * math.sqrt(math.pi) / 20)
    assert_rel_close(y, ref, 1e-5, "QuazimotoBlock")
    assert block.gate_value == pytest.approx(0.9)
    # init: strong diagonal, weaker neighbouring rings, no frustration
    assert block.ring_gain[0, 0] > block.ring_gain[0, 1] > 0 and block.frustration.abs().sum() == 0


def test_soft_clamp_is_identity_near_zero_and_bounded():
    x = torch.tensor([1e-4, -1e-3, 3.0, 50.0, -1e4])
    y = soft_clamp(x, 10.0)
    assert_rel_close(y[:2], x[:2], 1e-6, "slope 1 at 0")
    assert y.abs().max() <= 10.0 and y[3] > 9.5 and y[2] < 3.0


def test_quazimoto_modulation_hooks():
    torch.manual_seed(0)
    block = QuazimotoBlock(16, ring_sizes=(4, 8))
    x = torch.randn(2, 3, 16)
    zeros = {k: torch.zeros(2, 3, 2) for k in ("coupling", "frustration", "center", "drive")}
    with torch.no_grad():
        plain = block(x)
        assert torch.equal(block(x, modulation=zeros), plain)
        assert torch.equal(block(x, phase_offset=torch.zeros(2, 3, 12),
                                 extra_drive=torch.zeros(2, 3, 12)), plain)
        for key in zeros:
            moved = block(x, modulation={key: torch.full((2, 3, 2), 0.5)})
            assert (moved - plain).abs().max() > 1e-4, key
    with pytest.raises(ValueError, match="unknown modulation"):
        block(x, modulation={"speed": torch.zeros(2, 3, 2)})


def test_quazimoto_gradients_reach_every_parameter():
    torch.manual_seed(0)
    block = QuazimotoBlock(16, ring_sizes=(4, 8))
    block(torch.randn(3, 16)).square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------------------ attention
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


# ------------------------------------------------------------------------------- the model
def test_config_validates():
    with pytest.raises(ValueError, match="num_kv_heads"):
        PositronicConfig(num_heads=8, num_kv_heads=3)
    with pytest.raises(ValueError, match="rope_fraction"):
        PositronicConfig(hidden_size=48, num_heads=8, rope_fraction=0.5)   # 3 channels
    with pytest.raises(ValueError, match="traits"):
        PositronicConfig(traits=("wings",))
    with pytest.raises(ValueError, match="ring_sizes"):
        PositronicConfig(ring_sizes=(4, -1))
    with pytest.raises(ValueError, match="unknown key"):
        PositronicConfig.from_dict({"hidden": 3})
    c = PositronicConfig.from_dict(PositronicConfig(ring_sizes=[2, 4]).to_dict())
    assert c.ring_sizes == (2, 4) and c.num_oscillators == 6


def test_defaults_describe_the_model_card():
    c = PositronicConfig()
    assert c.ring_sizes == (4, 8, 16, 32, 64, 128, 256) and c.num_oscillators == 508
    assert (c.osc_steps, c.osc_dt, c.mtp_heads, c.z_loss) == (4, 0.5, 4, 1e-4)
    model = build_model("positronic", {"vocab_size": 300, "num_layers": 1})
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.endswith("bias") for n in names)
    assert "logit_scale" in names


@pytest.mark.parametrize("T", [1, 29])
def test_streaming_equivalence(T):
    model = tiny()
    x = tokens(T=T)
    cuts = sorted({0, 1, min(2, T), min(11, T), T})
    s_full, s_chunk, s_step = assert_streaming_equivalence(model, x, cuts, TOL32, "positronic")
    for s in (s_chunk, s_step):
        assert s.tokens_seen == T
        for a, b in zip(s.kv.keys, s_full.kv.keys):
            assert_rel_close(a, b, TOL32, "cached keys")


def test_cached_greedy_decoding_is_identical_to_full_recomputation():
    model = tiny(init_std=0.3)
    prompt = tokens(B=1, T=5, seed=3)
    with torch.no_grad():
        # cached: the prompt once, then one token at a time through the KV cache
        logits, state = model(prompt)
        cached, cached_logits = [], []
        nxt = logits[:, -1].argmax(-1)
        for _ in range(48):
            cached.append(int(nxt))
            step_logits, state = model.step(nxt, state)
            cached_logits.append(step_logits[0])
            nxt = step_logits.argmax(-1)
        # full recomputation: the whole sequence from scratch for every new token
        seq = prompt[0].tolist()
        full, full_logits = [], []
        for _ in range(48):
            out, _ = model(torch.tensor([seq]))
            full_logits.append(out[0, -1])
            full.append(int(out[0, -1].argmax()))
            seq.append(full[-1])
    assert cached == full
    assert len(set(cached)) > 3          # a non-trivial continuation
    assert_rel_close(torch.stack(cached_logits[:-1]), torch.stack(full_logits[1:]), TOL32,
                     "cached vs recomputed logits")


def test_training_loss_parts():
    model = tiny(mtp_heads=2, z_loss=1e-2)
    x, y = tokens(T=12, seed=1), tokens(T=12, seed=2)
    mask = torch.ones(2, 12)
    mask[0, 4] = 0
    loss, parts, logits, _ = model.training_loss(x, y, mask)
    logits = logits.detach()
    m = mask.flatten()
    ce = (F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none") * m).sum() / m.sum()
    z = (logits.logsumexp(-1).square().flatten() * m).sum() / m.sum()
    # head j predicts y[t + j + 1] from position t
    with torch.no_grad():
        h, _, _ = model.hidden(x, model.init_state(2))
    mtp = []
    for j, head in enumerate(model.draft_heads):
        s = j + 1
        with torch.no_grad():
            lg = model.head(head(h[:, :-s]))
        w = (mask[:, :-s] * mask[:, s:]).flatten()
        mtp.append((F.cross_entropy(lg.flatten(0, 1), y[:, s:].flatten(), reduction="none")
                    * w).sum() / w.sum())
    mtp = torch.stack(mtp).mean()
    assert parts["ce"] == pytest.approx(float(ce), rel=1e-5)
    assert parts["z"] == pytest.approx(float(z), rel=1e-5)
    assert parts["mtp"] == pytest.approx(float(mtp), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(float(ce + 1e-2 * z + 0.3 * mtp), rel=1e-5)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
    assert model.draft_heads[0].proj.weight.grad.abs().sum() > 0
    assert model.logit_scale.grad != 0


def test_draft_heads_start_as_the_main_head():
    model = tiny()
    h, _, _ = model.hidden(tokens(T=7), model.init_state(2))
    main = model.head(h)
    for drafts in model.draft_logits(h):
        assert torch.equal(drafts, main)


def greedy(model, prompt, n, stops=()):
    with torch.no_grad():
        logits, state = model(torch.tensor([prompt]))
        out = []
        for _ in range(n):
            token = int(logits[0, -1].argmax())
            if token in stops:
                break
            out.append(token)
            logits, state = model(torch.tensor([[token]]), state)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speculative_decoding_equals_greedy(seed):
    model = tiny(init_std=0.3, mtp_heads=4)
    torch.manual_seed(seed)
    # perturbed draft heads: some drafts accepted, some rejected
    for head in model.draft_heads:
        torch.nn.init.normal_(head.proj.weight, std=0.05 * seed)
    prompt = tokens(B=1, T=6, seed=seed)[0].tolist()
    want = greedy(model, prompt, 60)
    got, stats = model.speculative_generate(prompt, 60)
    assert got == want
    assert stats["forward_calls"] <= 61 and stats["accepted"] <= stats["drafted"]
    if seed == 0:   # untouched heads on a looping continuation: some drafts accepted
        assert stats["accepted"] > 0
    # with a stop token taken from the greedy continuation
    stop = want[17]
    assert model.speculative_generate(prompt, 60, stop_ids=(stop,))[0] == \
        greedy(model, prompt, 60, stops=(stop,))
    # exact length limits
    for n in (1, 2, 5):
        assert model.speculative_generate(prompt, n)[0] == want[:n]


def test_speculative_decoding_accepts_and_rejects_on_a_trained_pattern():
    # Train briefly on a periodic sequence: the draft heads learn it, so most drafts pass.
    model = tiny(mtp_heads=3)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    period = torch.tensor([5, 9, 2, 7, 11, 3, 8])
    seq = period.repeat(6)[None]
    for _ in range(60):
        loss = model.training_loss(seq[:, :-1], seq[:, 1:], torch.ones(1, seq.shape[1] - 1))[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    prompt = period.tolist()
    out, stats = model.speculative_generate(prompt, 28)
    assert out == greedy(model, prompt, 28)
    assert stats["accepted"] / stats["drafted"] > 0.5
    assert stats["forward_calls"] < 28 / 2


def test_speculative_decoding_never_picks_a_banned_id():
    model = tiny(init_std=0.3)
    prompt = tokens(B=1, T=6, seed=5)[0].tolist()
    want = greedy(model, prompt, 30)
    banned = sorted(set(want[:10]))
    got, _ = model.speculative_generate(prompt, 30, banned_ids=banned)
    assert not set(got) & set(banned)
    # the reference: greedy with the same ids masked
    with torch.no_grad():
        logits, state = model(torch.tensor([prompt]))
        ref = []
        for _ in range(30):
            token = int(logits[0, -1].index_fill(0, torch.tensor(banned), -math.inf).argmax())
            ref.append(token)
            logits, state = model(torch.tensor([[token]]), state)
    assert got == ref


def test_speculative_decoding_errors():
    with pytest.raises(ValueError, match="mtp_heads"):
        tiny(mtp_heads=0).speculative_generate([1, 2], 5)
    with pytest.raises(ValueError, match="prompt"):
        tiny().speculative_generate([], 5)


# -------------------------------------------------------------------------------- state
def test_state_round_trip_reset_and_rewind():
    model = tiny()
    x = tokens(T=9)
    with torch.no_grad():
        _, state = model(x[:, :6])
        loaded = PositronicState.from_state_dict(state.state_dict())
        a, _ = model(x[:, 6:], state)
        b, _ = model(x[:, 6:], loaded)
        assert torch.equal(a, b)
        # a reset lane is a fresh session; the other lane keeps its context
        reset = state.reset(torch.tensor([True, False]))
        c, _ = model(x[:, 6:], reset)
        fresh, _ = model(x[:1, 6:])
        assert_rel_close(c[:1], fresh, TOL32, "reset lane")
        assert_rel_close(c[1:], a[1:], TOL32, "kept lane")
    with pytest.raises(ValueError, match="drop"):
        state.rewind(99)
    with pytest.raises(ValueError, match="kv."):
        PositronicState.from_state_dict({"oops": torch.zeros(1)})


def test_rewind_equals_the_state_that_never_saw_the_drafts():
    model = tiny()
    x = tokens(T=10, seed=4)
    with torch.no_grad():
        _, state = model(x[:, :6])
        _, longer = model(torch.cat([x[:, 6:7], tokens(T=3, seed=9)], 1), state)
        rewound = longer.rewind(3)
        assert rewound.tokens_seen == 7 and rewound.kv.length == 7
        got, _ = model(x[:, 7:], rewound)
        want, _ = model(x)
    assert_rel_close(got, want[:, 7:], TOL32, "rewound then continued")


# ----------------------------------------------------------------------- checkpoint and CLI
def test_checkpoint_round_trip_and_generate_speculative_equals_greedy(tmp_path, capsys):
    from assoclm.generation import main as generate_main
    from assoclm.tokenizer import ByteTokenizer
    from assoclm.train.checkpoint import load_checkpoint, save_checkpoint

    tok = ByteTokenizer()
    model = tiny(vocab_size=tok.vocab_size, init_std=0.3, traits=("hrm", "moe"))
    save_checkpoint(tmp_path, 1, model, "positronic", tok)
    loaded, _, _ = load_checkpoint(tmp_path)
    x = tokens(vocab=tok.vocab_size)
    assert torch.equal(loaded(x)[0], model(x)[0])
    plain = tiny(vocab_size=tok.vocab_size, init_std=0.3)
    save_checkpoint(tmp_path / "plain", 1, plain, "positronic", tok)
    outputs = []
    for extra in ([], ["--speculative"]):
        code = generate_main(["--checkpoint", str(tmp_path / "plain"), "--prompt", "hello",
                              "--max-new-tokens", "40", "--temperature", "0", *extra])
        assert code == 0
        captured = capsys.readouterr()
        outputs.append(captured.out)
    assert outputs[0] == outputs[1] and len(outputs[0]) > len("hello")
    assert "accepted" in captured.err


def test_memories_can_be_frozen_at_run_time():
    model = tiny(traits=("specialists", "controllers"))
    x = tokens(T=6)
    with torch.no_grad():
        _, before = model(x[:, :3])
        _, written = model(x[:, 3:], before)
        model.set_memories_frozen(True)
        _, frozen = model(x[:, 3:], before)
        model.set_memories_frozen(False)
        _, again = model(x[:, 3:], before)
    stores = [k for k in before.extras if "specialists" in k or "controller" in k]
    assert stores
    for k in stores:
        assert torch.equal(frozen.extras[k], before.extras[k])
        assert not torch.equal(written.extras[k], before.extras[k])
        assert torch.equal(again.extras[k], written.extras[k])
