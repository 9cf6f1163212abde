"""The Hebbian baseline: the Propagator block with additive (linear-attention) writes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from assoclm.models.propagator import HebbianConfig, PropagatorConfig, PropagatorLM
from assoclm.ops.delta_rule import delta_rule_chunked, delta_rule_recurrent
from assoclm.ops.linear_attention import linear_attention_chunked, linear_attention_recurrent
from assoclm.testing import assert_rel_close, assert_streaming_equivalence, rel_error

TOL32 = 1e-5
MODES = ["input", "output"]
TINY = dict(vocab_size=50, hidden_size=32, num_layers=2, memory_key_size=16,
            memory_value_size=24, memory_heads=2, chunk_size=8, write_rate=0.9,
            forget_rate=0.3)


def tiny(write_from: str, config_cls=HebbianConfig, **kw) -> PropagatorLM:
    torch.manual_seed(0)
    model = PropagatorLM(config_cls(**{**TINY, "write_from": write_from, **kw}))
    # Larger weights than the default init so the memory path matters in the comparison.
    with torch.no_grad():
        for block in model.blocks:
            block.scale_read.fill_(1.0)
            block.gate_bias.normal_()
    return model.eval()


def tokens(B=3, T=37, vocab=50, seed=0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("write_from", MODES)
def test_streaming_equivalence_full_chunks_steps(write_from):
    model = tiny(write_from)
    s_full, state, s_step = assert_streaming_equivalence(model, tokens(), [0, 1, 9, 10, 26, 37],
                                                         TOL32, write_from)
    for i, (a, b, c) in enumerate(zip(state.memories, s_step.memories, s_full.memories)):
        assert_rel_close(a, c, TOL32, f"{write_from}: chunked memory of layer {i}")
        assert_rel_close(b, c, TOL32, f"{write_from}: step memory of layer {i}")


@pytest.mark.parametrize("write_from", MODES)
def test_hebbian_and_delta_models_with_the_same_weights_differ(write_from):
    hebbian = tiny(write_from)
    delta = tiny(write_from, config_cls=PropagatorConfig)
    delta.load_state_dict(hebbian.state_dict())
    x = tokens(T=20)
    with torch.no_grad():
        a, s_a = hebbian(x)
        b, s_b = delta(x)
    assert rel_error(a, b) > 1e-3, "hebbian and delta write rules gave the same logits"
    assert rel_error(s_a.memories[-1], s_b.memories[-1]) > 1e-2


@pytest.mark.parametrize("write_from", MODES)
def test_every_parameter_gets_a_gradient(write_from):
    model = tiny(write_from).train()
    logits, _ = model(tokens(T=20))
    loss = F.cross_entropy(logits.flatten(0, 1), tokens(T=20, seed=5).flatten())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient reached {missing}"


def test_output_mode_clips_the_memory():
    model = tiny("output", write_rate=1.0, forget_rate=0.0, memory_clip=0.05)
    with torch.no_grad():
        _, state = model(tokens(T=30))
    for m in state.memories:
        assert m.abs().max() <= 0.05


def test_config_write_rule_validation_and_round_trip():
    cfg = HebbianConfig(hidden_size=64)
    assert cfg.write_rule == "hebbian"
    assert HebbianConfig.from_dict(cfg.to_dict()) == cfg
    assert PropagatorConfig().write_rule == "delta"
    assert PropagatorConfig(write_rule="hebbian").write_rule == "hebbian"
    with pytest.raises(ValueError, match=r"HebbianConfig.write_rule must be 'hebbian'"):
        HebbianConfig(write_rule="delta")
    with pytest.raises(ValueError) as info:
        PropagatorConfig(write_rule="oja")
    assert "PropagatorConfig.write_rule must be one of ('delta', 'hebbian')" in str(info.value)


def test_same_key_written_twice_delta_returns_latest_hebbian_returns_sum():
    # One head, one key written twice, with v1 then v2 (β = α = 1, S_0 = 0); the "after" read
    # of the second token with that key is S_2ᵀk. Delta: S_1 = k v1ᵀ, then the error
    # v2 − S_1ᵀk = v2 − v1 makes S_2 = k v2ᵀ. Hebbian: S_2 = k v1ᵀ + k v2ᵀ.
    key = torch.tensor([0.0, 1.0, 0.0, 0.0])
    v1, v2 = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([3.0, 1.0, -1.0])
    k = key.expand(1, 2, 1, 4)  # (B, T, H, K)
    v = torch.stack([v1, v2]).view(1, 2, 1, 3)  # (B, T, H, V)
    ones = torch.ones(1, 2, 1)
    args = dict(q=k, k=k, v=v, beta=ones, decay=ones, read="after")
    for name, fn, want in [
        ("delta recurrent", delta_rule_recurrent, v2),
        ("delta chunked", delta_rule_chunked, v2),
        ("hebbian recurrent", linear_attention_recurrent, v1 + v2),
        ("hebbian chunked", linear_attention_chunked, v1 + v2),
    ]:
        o, _ = fn(**args)
        read = o[0, 1, 0]
        assert torch.equal(read, want), f"{name}: read {read.tolist()}, expected {want.tolist()}"
