"""Positronic's post-stack traits (HRM refinement, shared+routed MoE, JEPA): no-ops at
initialisation yet trainable, their auxiliary losses, streaming equivalence with them on,
and the ablation gates."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from assoclm.models.positronic import PositronicConfig, PositronicLM
from assoclm.models.positronic.post_traits import JEPAPredictor, PostStackTraits
from assoclm.testing import assert_rel_close

TINY = dict(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2,
            attn_rank=16, ring_sizes=[4, 8], mtp_heads=2, max_context=64)
TRAITS = [pytest.param(("hrm",), id="hrm"), pytest.param(("moe",), id="moe"),
          pytest.param(("jepa",), id="jepa"), pytest.param(("hrm", "moe", "jepa"), id="all")]
# the parameters (by name inside model.post) that start at zero: the traits' outputs
ZERO_INIT = {"hrm": ("hrm.out.weight",),
             "moe": ("moe.shared.down.weight",
                     *(f"moe.routed.experts.{e}.down.weight" for e in range(4))),
             "jepa": ()}


def build(traits=(), seed=0, **kw) -> PositronicLM:
    torch.manual_seed(seed)
    return PositronicLM(PositronicConfig(**TINY, traits=traits, **kw))


def with_weights_of(source: PositronicLM, traits=(), **kw) -> PositronicLM:
    """A model with `traits` that shares every weight `source` also has (the rest as
    initialised)."""
    model = build(traits, seed=1, **kw)
    model.load_state_dict(source.state_dict(), strict=False)
    return model


def tokens(B=2, T=16, seed=0) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], (B, T),
                         generator=torch.Generator().manual_seed(seed))


def perturb(model: PositronicLM, std=0.3, seed=2) -> PositronicLM:
    """Random values for every trait parameter, so that the traits change the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.post.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))
    return model


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("traits", TRAITS)
def test_traits_are_noops_at_init(traits):
    plain = build()
    model = with_weights_of(plain, traits)
    x = tokens()
    with torch.no_grad():
        want, got = plain(x)[0], model(x)[0]
    assert max_diff(got, want) <= 1e-6, \
        f"{traits} at init change the logits by {max_diff(got, want):.3e}"


@pytest.mark.parametrize("trait", ["hrm", "moe", "jepa"])
def test_every_trait_parameter_trains(trait):
    model = build((trait,))
    x, y = tokens(seed=0), tokens(seed=1)
    mask = torch.ones(x.shape)
    model.training_loss(x, y, mask)[0].backward()
    params = dict(model.post.named_parameters())
    for name in ZERO_INIT[trait]:
        assert params[name].abs().max() == 0, f"{name} is not zero at init"
        assert params[name].grad is not None and params[name].grad.abs().max() > 0, \
            f"{name} (zero-initialised) got no gradient on the first backward pass"
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= 0.1 * p.grad
    model.zero_grad(set_to_none=True)
    model.training_loss(x, y, mask)[0].backward()
    dead = [n for n, p in params.items() if p.grad is None or p.grad.abs().max() == 0]
    assert not dead, f"after one SGD step these {trait} parameters get no gradient: {dead}"


def test_moe_balance_loss_enters_the_objective():
    model = build(("moe",))
    x, y, mask = tokens(seed=0), tokens(seed=1), torch.ones(2, 16)
    loss, parts, _, _ = model.training_loss(x, y, mask)
    off = with_weights_of(model, ("moe",), moe_weight=0.0)
    loss_off = off.training_loss(x, y, mask)[0]
    assert "moe" in parts and parts["moe"] > 0, f"parts without a balance loss: {parts}"
    want = 0.01 * parts["moe"]
    assert abs((loss - loss_off).item() - want) < 1e-6, \
        f"loss difference {(loss - loss_off).item():.6g} != moe_weight · balance {want:.6g}"


def test_jepa_loss_against_a_per_position_loop():
    torch.manual_seed(0)
    jepa = JEPAPredictor(8, ahead=3)
    h = torch.randn(2, 7, 8)
    mask = torch.tensor([[1, 1, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]], dtype=torch.float32)
    total, count = 0.0, 0.0
    for b in range(2):
        for t in range(7 - 3):
            m = mask[b, t] * mask[b, t + 3]
            cos = F.cosine_similarity(jepa.predictor(h[b, t]), h[b, t + 3], dim=0)
            total, count = total + m * (1 - cos), count + m
    assert_rel_close(jepa(h, mask), total / count, 1e-5, "JEPA loss")
    # too short for any (t, t + k) pair: zero, not NaN
    assert jepa(h[:, :3], mask[:, :3]).item() == 0


def test_jepa_target_is_detached():
    """Positions used only as targets (t >= T − k) get no gradient; predictor inputs do."""
    model = build(("jepa",))
    k = model.config.jepa_ahead
    h = torch.randn(2, 9, 32, requires_grad=True)
    parts: dict[str, float] = {}
    model.post.aux_loss(h, {}, torch.ones(2, 9), parts).backward()
    per_position = h.grad.abs().sum(dim=(0, 2))
    assert per_position[-k:].max() == 0, \
        f"the stop-gradient target leaks gradient: {per_position[-k:].tolist()}"
    assert (per_position[:-k] > 0).all(), f"predictor inputs without gradient: {per_position}"
    assert "jepa" in parts


def test_jepa_never_changes_the_logits():
    plain = build()
    model = perturb(with_weights_of(plain, ("jepa",)))
    x = tokens()
    with torch.no_grad():
        diff = max_diff(model(x)[0], plain(x)[0])
    assert diff == 0, f"a trained JEPA predictor changes the logits by {diff:.3e}"


def test_all_traits_together():
    model = build(("hrm", "moe", "jepa"))
    x, y = tokens(seed=0), tokens(seed=1)
    loss, parts, logits, _ = model.training_loss(x, y, torch.ones(x.shape))
    assert {"ce", "moe", "jepa"} <= set(parts), f"missing parts: {parts}"
    assert torch.isfinite(loss) and logits.shape == (2, 16, 64)
    loss.backward()
    bad = [n for n, p in model.named_parameters()
           if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients in {bad}"


@pytest.mark.parametrize("traits", TRAITS)
def test_streaming_equivalence(traits):
    model = perturb(build(traits)).eval()
    x = tokens(B=2, T=24, seed=3)
    with torch.no_grad():
        full = model(x)[0]
        state, chunks = None, []
        for lo in range(0, 24, 5):
            logits, state = model(x[:, lo:lo + 5], state)
            chunks.append(logits)
        state, steps = None, []
        for t in range(24):
            logits, state = model.step(x[:, t], state)
            steps.append(logits[:, None])
    assert max_diff(torch.cat(chunks, 1), full) <= 1e-5, \
        f"chunks of 5 differ from the full forward by {max_diff(torch.cat(chunks, 1), full):.3e}"
    assert max_diff(torch.cat(steps, 1), full) <= 1e-5, \
        f"token-by-token differs from the full forward by {max_diff(torch.cat(steps, 1), full):.3e}"


def test_component_gates_remove_exactly_their_trait():
    model = perturb(build(("hrm", "moe", "jepa"))).eval()
    gates = model.post.component_gates()
    assert set(gates) == {"hrm", "moe"}, f"gates for {sorted(gates)}"
    x = tokens()
    with torch.no_grad():
        assert max_diff(model(x)[0], with_weights_of(model)(x)[0]) > 1e-3, \
            "the perturbed traits do not change the logits: the test would prove nothing"
        for trait, params in gates.items():
            ablated = copy.deepcopy(model)
            names = {id(p): n for n, p in model.named_parameters()}
            ablated_params = dict(ablated.named_parameters())
            for p in params:
                ablated_params[names[id(p)]].zero_()
            rest = tuple(t for t in model.config.traits if t != trait)
            without = with_weights_of(model, rest).eval()
            diff = max_diff(ablated(x)[0], without(x)[0])
            assert diff <= 1e-6, f"zeroing the {trait} gates leaves |Δlogit| {diff:.3e}"


def test_config_without_post_traits_is_refused():
    with pytest.raises(ValueError, match="at least one of"):
        PostStackTraits(PositronicConfig(**TINY))
