"""Propagator: config validation, size, streaming equivalence, explicit state."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from assoclm.models import MemoryState, PropagatorConfig, PropagatorLM
from assoclm.testing import assert_rel_close, assert_streaming_equivalence

TOL32 = 1e-5
MODES = ["input", "output"]


def tiny(write_from: str, **kw) -> PropagatorLM:
    torch.manual_seed(0)
    cfg = dict(vocab_size=50, hidden_size=32, num_layers=2, memory_key_size=16,
               memory_value_size=24, memory_heads=2, write_from=write_from, chunk_size=8,
               write_rate=0.9, forget_rate=0.3)
    cfg.update(kw)
    model = PropagatorLM(PropagatorConfig(**cfg))
    # Larger weights than the default init so the memory path matters in the comparison.
    with torch.no_grad():
        for block in model.blocks:
            block.scale_read.fill_(1.0)
            block.gate_bias.normal_()
    return model.eval()


def tokens(B=3, T=37, vocab=50, seed=0) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(("write_from", "conv_size"), [("input", 0), ("output", 0),
                                                      ("input", 4)])
@pytest.mark.parametrize("mlp", ["swiglu", "silu"])
def test_streaming_equivalence_full_chunks_steps(write_from, conv_size, mlp):
    model = tiny(write_from, mlp=mlp, conv_size=conv_size)
    s_full, state, s_step = assert_streaming_equivalence(model, tokens(), [0, 1, 9, 10, 26, 37],
                                                         TOL32, write_from)
    for i, (a, b, c) in enumerate(zip(state.memories, s_step.memories, s_full.memories)):
        assert_rel_close(a, c, TOL32, f"{write_from}: chunked memory of layer {i}")
        assert_rel_close(b, c, TOL32, f"{write_from}: step memory of layer {i}")
    assert len(s_full.convs) == (model.config.num_layers if conv_size else 0)
    for i, (a, b, c) in enumerate(zip(state.convs, s_step.convs, s_full.convs)):
        assert c.abs().sum() > 0  # the convolution state holds real inputs
        assert_rel_close(a, c, TOL32, f"chunked conv state of layer {i}")
        assert_rel_close(b, c, TOL32, f"step conv state of layer {i}")


def test_short_convolution_state_resets_saves_and_validates(tmp_path):
    model = tiny("input", conv_size=3)
    with torch.no_grad():
        _, state = model(tokens(T=12))
        reset = state.reset(torch.tensor([True, False, False]))
        assert all(c[0].abs().sum() == 0 and c[1].abs().sum() > 0 for c in reset.convs)
        save_file(state.state_dict(), tmp_path / "s.safetensors")
        loaded = MemoryState.from_state_dict(load_file(tmp_path / "s.safetensors"))
        x = tokens(T=5, seed=3)
        assert torch.equal(model(x, loaded)[0], model(x, state)[0])
        # the convolution changes what is written: without it the logits differ
        plain = tiny("input")
        plain.load_state_dict({k: v for k, v in model.state_dict().items()
                               if not k.endswith("conv.weight")})
        assert not torch.allclose(plain(x)[0], model(x)[0])
        with pytest.raises(ValueError, match="short-convolution"):
            plain(x, state)
    for bad in ({"conv_size": 1}, {"conv_size": 4, "write_from": "output"}):
        with pytest.raises(ValueError, match="conv_size"):
            PropagatorConfig(**{**tiny("input").config.to_dict(), **bad})


@pytest.mark.parametrize("write_from", MODES)
def test_memory_carries_information_across_calls(write_from):
    # The same suffix after different prefixes must give different logits: the state matters.
    model = tiny(write_from)
    with torch.no_grad():
        _, s1 = model(tokens(B=1, T=20, seed=1))
        _, s2 = model(tokens(B=1, T=20, seed=2))
        suffix = tokens(B=1, T=5, seed=3)
        a, _ = model(suffix, s1)
        b, _ = model(suffix, s2)
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("write_from", MODES)
def test_every_parameter_gets_a_gradient(write_from):
    model = tiny(write_from).train()
    logits, _ = model(tokens(T=20))
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens(T=20, seed=5).flatten())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"no gradient reached {missing}"


def test_default_config_is_about_22m_parameters():
    n = PropagatorLM(PropagatorConfig()).num_parameters()
    assert 20e6 < n < 24e6, f"{n / 1e6:.2f}M parameters"


@pytest.mark.parametrize("write_from", MODES)
def test_state_size_is_constant_and_reset_zeroes_lanes(write_from):
    model = tiny(write_from)
    with torch.no_grad():
        _, s_short = model(tokens(T=3))
        _, s_long = model(tokens(T=60))
    assert s_short.nbytes == s_long.nbytes == model.init_state(3).nbytes
    # 2 layers x 3 lanes x 2 heads x 8 x 12 floats
    assert s_long.nbytes == 2 * 3 * 2 * 8 * 12 * 4
    reset = s_long.reset(torch.tensor([True, False, True]))
    for m_new, m_old in zip(reset.memories, s_long.memories):
        assert m_new[[0, 2]].abs().sum() == 0
        assert torch.equal(m_new[1], m_old[1])
        assert m_old[0].abs().sum() > 0, "reset modified the original state"


def test_reset_lane_equals_fresh_start():
    model = tiny("input")
    x = tokens(T=12)
    with torch.no_grad():
        _, state = model(tokens(T=30, seed=9))
        state = state.reset(torch.tensor([True, False, False]))
        carried, _ = model(x, state)
        fresh, _ = model(x[:1])
    assert_rel_close(carried[:1], fresh, TOL32, "lane 0 after reset vs a fresh state")


def test_state_round_trips_through_safetensors(tmp_path):
    model = tiny("input")
    with torch.no_grad():
        _, state = model(tokens(T=10))
    save_file(state.state_dict(), tmp_path / "state.safetensors")
    loaded = MemoryState.from_state_dict(load_file(tmp_path / "state.safetensors"))
    x = tokens(T=4, seed=4)
    with torch.no_grad():
        a, _ = model(x, state)
        b, _ = model(x, loaded)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="state dict keys"):
        MemoryState.from_state_dict({"layers.3.memory": torch.zeros(1, 1, 1, 1)})


def test_forward_does_not_modify_the_state_passed_in():
    model = tiny("output")
    with torch.no_grad():
        _, state = model(tokens(T=5))
        before = [m.clone() for m in state.memories]
        model(tokens(T=5, seed=1), state)
        model.step(tokens(T=1, seed=2)[:, 0], state)
    assert all(torch.equal(a, b) for a, b in zip(before, state.memories))


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 0}, "hidden_size must be an integer >= 1"),
    ({"memory_heads": 3}, "must be divisible by memory_heads=3"),
    ({"write_rate": 1.5}, "write_rate must be a number in (0, 1]"),
    ({"forget_rate": 1.0}, "forget_rate must be a number in [0, 1)"),
    ({"write_from": "middle"}, "write_from must be one of ('input', 'output')"),
    ({"mlp": "relu"}, "mlp must be one of ('swiglu', 'silu')"),
    ({"chunk_size": 24}, "chunk_size must be a power of two"),
])
def test_config_rejects_bad_values(changes, message):
    with pytest.raises(ValueError) as info:
        PropagatorConfig(**changes)
    assert message in str(info.value)


def test_config_rejects_unknown_keys_and_round_trips():
    cfg = PropagatorConfig(hidden_size=64, write_from="output")
    assert PropagatorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['hiden_size'\]"):
        PropagatorConfig.from_dict({"hiden_size": 64})


def test_bad_tokens_and_mismatched_state_fail_clearly():
    model = tiny("input")
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor of shape \[B, T\]"):
        model(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"tokens must be an integer tensor of shape \[B\]"):
        model.step(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="state has 2 layers and batch 3"):
        model(tokens(B=2, T=4), model.init_state(3))


@pytest.mark.parametrize("write_from", MODES)
def test_underflowing_write_gate_is_a_no_write_not_an_error(write_from):
    # σ(−200) is exactly 0 in float32, so β = 0: the model must treat it as "write nothing".
    model = tiny(write_from)
    heads = model.config.memory_heads
    with torch.no_grad():
        for block in model.blocks:
            block.gate_bias[:heads].fill_(-200.0)
        _, state = model(tokens(T=9))
        _, stepped = model.step(tokens(T=1)[:, 0])
    for m in state.memories + stepped.memories:
        assert m.abs().max() == 0, "a zero write strength still wrote to the memory"
