"""Positronic's ring traits (fractal seed, interstitial rings, controllers, specialists):
their pieces against per-token references, no-ops at initialisation yet trainable,
streaming equivalence, explicit state (round trip, lane reset, interleaved sessions,
frozen memories) and the ablation gates."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from assoclm.models.positronic import (
    RING_TRAITS,
    PositronicConfig,
    PositronicLM,
    PositronicState,
)
from assoclm.models.positronic.ring_traits import (
    CONTROLLER_BETA,
    RingControllers,
    RingSpecialists,
    RingTraits,
    daido_features,
    mandelbrot_features,
    ngram_bucket,
    radical_inverse,
    window_attention,
)
from assoclm.testing import assert_rel_close, assert_streaming_equivalence

TOL32 = 1e-5
# awkward sizes on purpose: a window shorter than the test sequences, a prime bucket count
TINY = dict(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
            attn_rank=16, ring_sizes=(4, 8, 16), max_context=64, interstitial_window=6,
            ngram_buckets=97, controller_dim=8, specialist_dim=8, mtp_heads=0)
EACH = [pytest.param((t,), id=t) for t in RING_TRAITS]
EACH_AND_ALL = EACH + [pytest.param(RING_TRAITS, id="all")]


def build(traits=(), seed=0, **kw) -> PositronicLM:
    torch.manual_seed(seed)
    return PositronicLM(PositronicConfig(**{**TINY, **kw}, traits=traits))


def with_weights_of(source: PositronicLM, traits=(), **kw) -> PositronicLM:
    """A model with `traits` sharing every weight `source` has (the rest as initialised)."""
    model = build(traits, seed=1, **kw)
    missing = model.load_state_dict(source.state_dict(), strict=False)
    assert not missing.unexpected_keys, missing.unexpected_keys
    return model


def gates(model: PositronicLM) -> dict[str, list[torch.nn.Parameter]]:
    out: dict[str, list[torch.nn.Parameter]] = {}
    for block in model.blocks:
        for name, params in block.ring_traits.component_gates().items():
            out.setdefault(name, []).extend(params)
    return out


@torch.no_grad()
def perturb_gates(model: PositronicLM, seed: int = 3, std: float = 0.5) -> PositronicLM:
    """Give every zero-initialised decoder random values: the traits then change the logits."""
    g = torch.Generator().manual_seed(seed)
    for params in gates(model).values():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def tokens(B=2, T=24, seed=0) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], (B, T),
                         generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the pieces
def test_halton_points_and_fractal_table_are_fixed_and_not_saved():
    assert radical_inverse(torch.arange(1, 6), 2).tolist() == [0.5, 0.25, 0.75, 0.125, 0.625]
    assert_rel_close(radical_inverse(torch.arange(1, 5), 3),
                     torch.tensor([1 / 3, 2 / 3, 1 / 9, 4 / 9], dtype=torch.float64), 1e-15,
                     "base-3 radical inverse")
    table = mandelbrot_features(64)
    assert table.shape == (64, 17) and torch.isfinite(table).all()
    assert torch.equal(table, mandelbrot_features(64))
    # token 0 is Halton point 1, (1/2, 1/3): c = −0.75 − 0.41667i, and z_1 = c
    c = complex(-2 + 2.5 / 2, -1.25 + 2.5 / 3)
    assert table[0, 0].item() == pytest.approx(math.cos(math.atan2(c.imag, c.real)), abs=1e-6)
    assert table[0, 8].item() == pytest.approx(math.sin(math.atan2(c.imag, c.real)), abs=1e-6)
    # escape time: 1 for the points that never leave |z| <= 2 within the orbit, < 1 otherwise
    assert 0 <= table[:, -1].min() < 1 and table[:, -1].max() == 1
    # regenerated from the vocabulary, never stored: equal across seeds, absent from checkpoints
    a, b = build(("fractal_seed",), seed=0), build(("fractal_seed",), seed=5)
    ta, tb = a.blocks[0].ring_traits.fractal_seed.table, b.blocks[0].ring_traits.fractal_seed.table
    assert torch.equal(ta, tb) and torch.equal(ta, table)
    assert not [k for k in a.state_dict() if k.endswith("table")]


def test_ngram_bucket_is_deterministic_order_sensitive_and_spread():
    g = torch.Generator().manual_seed(0)
    windows = torch.randint(0, 65, (2000, 3), generator=g)
    b = ngram_bucket(windows, 97)
    assert torch.equal(b, ngram_bucket(windows.clone(), 97))
    assert b.min() >= 0 and b.max() < 97 and b.unique().numel() == 97
    assert ngram_bucket(torch.tensor([[1, 2]]), 1 << 20) != ngram_bucket(torch.tensor([[2, 1]]),
                                                                        1 << 20)
    with pytest.raises(ValueError, match="buckets"):
        ngram_bucket(windows, 0)


@pytest.mark.parametrize("T,W", [(1, 3), (7, 3), (5, 8)], ids=lambda v: str(v))
def test_window_attention_matches_a_per_token_loop(T, W):
    g = torch.Generator().manual_seed(T * 10 + W)
    B, H, w = 2, 3, 4
    q, k, v = (torch.randn(B, T, H, w, generator=g) for _ in range(3))
    past_k, past_v = torch.randn(B, W, H, w, generator=g), torch.randn(B, W, H, w, generator=g)
    # lane 0 is young (only its newest slot holds a token), lane 1 is full
    past_valid = torch.ones(B, W)
    past_valid[0, :-1] = 0
    out, nk, nv, nvalid = window_attention(q, k, v, past_k, past_v, past_valid)
    for b in range(B):
        hist = [(past_k[b, s], past_v[b, s]) for s in range(W) if past_valid[b, s]]
        for t in range(T):
            hist.append((k[b, t], v[b, t]))
            keys = torch.stack([h[0] for h in hist[-W:]])         # [n, H, w]
            vals = torch.stack([h[1] for h in hist[-W:]])
            att = torch.einsum("hd,nhd->hn", q[b, t], keys).div(math.sqrt(w)).softmax(-1)
            ref = torch.einsum("hn,nhd->hd", att, vals)
            assert_rel_close(out[b, t], ref, 1e-6, f"lane {b} token {t}")
    all_k = torch.cat((past_k, k), 1)
    assert torch.equal(nk, all_k[:, -W:]) and torch.equal(nv, torch.cat((past_v, v), 1)[:, -W:])
    assert torch.equal(nvalid, torch.cat((past_valid, torch.ones(B, T)), 1)[:, -W:])


def test_daido_features_are_ring_means_of_harmonics():
    sizes = (4, 8)
    theta = torch.randn(3, 12, generator=torch.Generator().manual_seed(0))
    f = daido_features(theta, sizes, 5)                               # m = 1, 2, 3; 5 kept
    assert f.shape == (3, 2, 5)
    for r, (lo, hi) in enumerate([(0, 4), (4, 12)]):
        for m in (1, 2, 3):
            z = torch.exp(1j * m * theta[:, lo:hi].double()).mean(-1)
            assert_rel_close(f[:, r, 2 * (m - 1)], z.real, 1e-6, f"Re Z{m} ring {r}")
            if 2 * (m - 1) + 1 < 5:
                assert_rel_close(f[:, r, 2 * m - 1], z.imag, 1e-6, f"Im Z{m} ring {r}")


def test_controllers_run_the_online_delta_rule_and_keep_fast_weights_out_of_autograd():
    torch.manual_seed(0)
    sizes, w, D, B, T = (4, 8), 6, 16, 2, 9
    ctl = RingControllers(D, sizes, w, freeze=False)
    torch.nn.init.normal_(ctl.decoder)
    h, theta0 = torch.randn(B, T, D, requires_grad=True), torch.randn(B, T, 12)
    S0 = torch.randn(B, 2, w, w) * 0.1
    mod, S = ctl(h, theta0, S0)
    assert not S.requires_grad, "the fast weights must not carry a graph"
    k = F.normalize(ctl.key(h).view(B, T, 2, w), dim=-1).detach()
    v = daido_features(theta0, sizes, w)
    S_ref, preds = S0.clone(), []
    for t in range(T):
        p = torch.einsum("brk,brkv->brv", k[:, t], S_ref)             # read before the write
        preds.append(p)
        S_ref = S_ref + CONTROLLER_BETA * k[:, t, ..., None] * (v[:, t] - p)[..., None, :]
    p = torch.stack(preds, 1)
    m = torch.tanh(torch.einsum("btrf,rfm->btrm", torch.cat((p, v - p), -1), ctl.decoder))
    assert_rel_close(S, S_ref, TOL32, "fast weights")
    for i, name in enumerate(("coupling", "frustration", "center", "drive")):
        assert_rel_close(mod[name], m[..., i], TOL32, name)
    # the key projection learns through the read
    mod["coupling"].sum().backward()
    assert ctl.key.weight.grad.abs().sum() > 0


def test_specialists_route_write_and_read_like_a_per_token_loop():
    torch.manual_seed(0)
    sizes, E, k_top, w, D, B, T = (4, 8), 3, 2, 5, 16, 2, 7
    sp = RingSpecialists(D, sizes, E, k_top, w, freeze=False)
    torch.nn.init.normal_(sp.decoder)
    h = torch.randn(B, T, D)
    S0 = torch.randn(B, 2, E, w, w) * 0.1
    with torch.no_grad():
        drive, S = sp(h, S0)
        logits = sp.router(h).view(B, T, 2, E)
        q, k = F.normalize(sp.query_key(h).view(B, T, 2, 2, w), dim=-1).unbind(2)
        v = sp.value(h).view(B, T, 2, E, w)
        S_ref, ys = S0.clone(), []
        for t in range(T):
            y = torch.zeros(B, 2, w)
            for b in range(B):
                for r in range(2):
                    top, chosen = logits[b, t, r].topk(k_top)
                    for g, e in zip(top.softmax(-1), chosen.tolist()):
                        M = S_ref[b, r, e]
                        kk = k[b, t, r]
                        M = M + g * torch.outer(kk, v[b, t, r, e] - M.T @ kk)
                        S_ref[b, r, e] = M
                        y[b, r] += g * (M.T @ q[b, t, r])            # read after the write
            ys.append(y)
        y = torch.stack(ys, 1)                                        # [B, T, R, w]
        ring = torch.tensor([0] * 4 + [1] * 8)
        ref = torch.tanh(torch.einsum("btnv,nv->btn", y[:, :, ring], sp.decoder))
    assert_rel_close(S, S_ref, TOL32, "stores")
    assert_rel_close(drive, ref, TOL32, "drive")


# ---------------------------------------------------------------------- in the full model
@pytest.mark.parametrize("mtp", [0, 2], ids=["mtp0", "mtp2"])
@pytest.mark.parametrize("traits", EACH_AND_ALL)
def test_traits_are_no_ops_at_init(traits, mtp):
    plain = build(mtp_heads=mtp).eval()
    model = with_weights_of(plain, traits, mtp_heads=mtp).eval()
    x = tokens()
    with torch.no_grad():
        want, _ = plain(x)
        got, _ = model(x)
    diff = (got - want).abs().max().item()
    assert diff <= 1e-6, f"{traits}: logits moved by {diff:.3e} at init"


@pytest.mark.parametrize("traits", EACH)
def test_traits_train(traits):
    (trait,) = traits
    model = build(traits, mtp_heads=2)
    x, y = tokens(T=12, seed=1), tokens(T=12, seed=2)
    mask = torch.ones_like(x)
    model.training_loss(x, y, mask)[0].backward()
    for p in gates(model)[trait]:
        assert p.grad is not None and p.grad.abs().sum() > 0, \
            f"{trait}: a zero-initialised decoder {list(p.shape)} got no gradient"
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    model.zero_grad()
    model.training_loss(x, y, mask)[0].backward()
    for i, block in enumerate(model.blocks):
        for name, p in getattr(block.ring_traits, trait).named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, \
                f"{trait}: layer {i} parameter {name} got no gradient after one step"


def test_streaming_equivalence_with_all_ring_traits():
    model = perturb_gates(build(RING_TRAITS))
    x = tokens(T=24)
    with torch.no_grad():
        assert (model(x)[0] - build().eval()(x)[0]).abs().max() > 1e-3, \
            "the perturbed traits should change the logits"
    states = assert_streaming_equivalence(model, x, [0, 5, 10, 15, 20, 24], TOL32, "ring traits")
    full = states[0].extras
    assert set(full) == {f"layers.{i}.{n}" for i in range(2) for n in (
        "prev_tokens", "window_keys", "window_values", "window_valid", "controller",
        "specialists")}
    for other, how in zip(states[1:], ("chunked", "step")):
        for name, t in full.items():
            assert_rel_close(other.extras[name], t, TOL32, f"{how} state {name}")


def test_state_round_trip_reset_and_interleaved_sessions():
    model = perturb_gates(build(RING_TRAITS))
    x = tokens(T=16, seed=4)
    with torch.no_grad():
        whole, _ = model(x)
        _, mid = model(x[:, :9])
        restored = PositronicState.from_state_dict(mid.state_dict())
        assert set(restored.extras) == set(mid.extras)
        rest, _ = model(x[:, 9:], restored)
        assert_rel_close(rest, whole[:, 9:], TOL32, "continued from a saved state")
        # a reset lane is a fresh session; the other lane keeps its context
        reset = mid.reset(torch.tensor([True, False]))
        assert all(t[0].abs().sum() == 0 for t in reset.extras.values())
        got, _ = model(x[:, 9:], reset)
        fresh, _ = model(x[:1, 9:])
        assert_rel_close(got[:1], fresh, TOL32, "reset lane")
        assert_rel_close(got[1:], whole[1:, 9:], TOL32, "kept lane")
        # two sessions, one token each in turn, with separate states: as if each ran alone
        a, b = x[:1], x[1:]
        sa = sb = None
        out_a, out_b = [], []
        for t in range(x.shape[1]):
            la, sa = model.step(a[:, t], sa)
            lb, sb = model.step(b[:, t], sb)
            out_a.append(la)
            out_b.append(lb)
        assert_rel_close(torch.stack(out_a, 1), model(a)[0], TOL32, "session A interleaved")
        assert_rel_close(torch.stack(out_b, 1), model(b)[0], TOL32, "session B interleaved")


@pytest.mark.parametrize("T", [1, 7], ids=["step", "T7"])
def test_frozen_memories_are_read_but_never_written(T):
    live = perturb_gates(build(RING_TRAITS))
    frozen = with_weights_of(live, RING_TRAITS, freeze_memories=True).eval()
    x = tokens(T=10 + T, seed=6)
    with torch.no_grad():
        _, state = live(x[:, :10])
        logits, after = frozen(x[:, 10:], state)
        moved, _ = live(x[:, 10:], state)
    for name, t in state.extras.items():
        if name.endswith(("controller", "specialists")):
            assert t.abs().sum() > 0 and torch.equal(after.extras[name], t), name
        elif name.endswith("prev_tokens"):
            assert not torch.equal(after.extras[name], t), f"{name} should still advance"
    assert (logits - moved).abs().max() > 0, "freezing should change what later tokens read"


def test_component_gates_remove_exactly_their_trait():
    plain = build().eval()
    model = perturb_gates(with_weights_of(plain, RING_TRAITS))
    x = tokens(T=10, seed=7)
    with torch.no_grad():
        want, _ = plain(x)
        both, _ = model(x)
        assert set(gates(model)) == set(RING_TRAITS)
        for trait in RING_TRAITS:
            saved = [p.clone() for p in gates(model)[trait]]
            for p in gates(model)[trait]:
                p.zero_()
            one_off, _ = model(x)
            assert (one_off - both).abs().max() > 1e-4, f"zeroing {trait} changed nothing"
            for p, s in zip(gates(model)[trait], saved):
                p.copy_(s)
        for params in gates(model).values():
            for p in params:
                p.zero_()
        got, _ = model(x)
    assert (got - want).abs().max() <= 1e-6, "zeroing every gate must give the plain model"


def test_bad_configs_and_states_fail_with_clear_messages():
    with pytest.raises(ValueError, match="at least two"):
        build(("interstitial",), ring_sizes=(8,))
    model = build(("controllers",))
    with pytest.raises(ValueError, match="RingTraits needs"):
        RingTraits(model.config.replace(traits=()), 0, model.blocks[0].osc)
    state = model.init_state(2)
    bad = PositronicState(state.kv, {k: t[:, :1] for k, t in state.extras.items()})
    with pytest.raises(ValueError, match="controller"):
        model(tokens(T=3), bad)
