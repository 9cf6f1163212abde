"""The chunked and one-step linear attention (additive writes) against the per-token reference."""

from __future__ import annotations

import functools

import pytest
import torch

from assoclm.ops.linear_attention import (
    linear_attention_chunked,
    linear_attention_recurrent,
    linear_attention_step,
    linear_attention_write,
)
from assoclm.testing import assert_rel_close, run_with_grads
from assoclm.testing import memory_op_inputs as make_inputs

TOL32 = 1e-5
TOL_BF16 = 1e-2






@functools.cache
def reference(T: int, decay: bool, init: bool, read: str) -> dict:
    return run_with_grads(linear_attention_recurrent,
                          make_inputs(T=T, decay=decay, init=init), read)


@pytest.mark.parametrize("read", ["after", "before"])
@pytest.mark.parametrize("init", [False, True], ids=["S0=0", "S0"])
@pytest.mark.parametrize("decay", [False, True], ids=["nodecay", "decay"])
@pytest.mark.parametrize("chunk_size", [16, 64], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("T", [1, 7, 64, 100], ids=lambda t: f"T{t}")
def test_chunked_matches_recurrent(T, chunk_size, decay, init, read):
    inputs = make_inputs(T=T, decay=decay, init=init)
    got = run_with_grads(functools.partial(linear_attention_chunked, chunk_size=chunk_size),
                         inputs, read)
    want = reference(T, decay, init, read)
    assert got.keys() == want.keys()
    for name in want:
        assert_rel_close(got[name], want[name], TOL32, name)


@pytest.mark.parametrize("read", ["after", "before"])
def test_chunked_matches_recurrent_under_strong_decay(read):
    # α down to 1e-3 makes in-chunk log-decays span ~ -400: masked exps must not overflow.
    inputs = make_inputs(T=150, decay_range=(1e-3, 1.0), seed=3)
    got = run_with_grads(linear_attention_chunked, inputs, read)
    want = run_with_grads(linear_attention_recurrent, inputs, read)
    for name in want:
        assert_rel_close(got[name], want[name], TOL32, name)


def test_recurrent_matches_hand_computed_example():
    # One head, K = V = 2, two tokens; every number below is exact in float32.
    #   S_1 = 0.5·S_0 + 0.5·k_1 v_1ᵀ = [[1.5, 1], [0, 2]]
    #   S_2 = 0.25·S_1 + 1·k_2 v_2ᵀ  = [[0.375, 0.25], [3, −0.5]]
    x = {
        "q": torch.tensor([[[[1.0, 1.0]], [[1.0, -1.0]]]]),  # (1, 2, 1, 2)
        "k": torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]]),
        "v": torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]]),
        "beta": torch.tensor([[[0.5], [1.0]]]),  # (1, 2, 1)
        "decay": torch.tensor([[[0.5], [0.25]]]),
        "initial_state": torch.tensor([[[[2.0, 0.0], [0.0, 4.0]]]]),  # (1, 1, 2, 2)
    }
    S_2 = torch.tensor([[[[0.375, 0.25], [3.0, -0.5]]]])
    # after: o_t = S_tᵀ q_t;  before: o_t = S_{t−1}ᵀ q_t
    expected = {
        "after": torch.tensor([[[[1.5, 3.0]], [[-2.625, 0.75]]]]),
        "before": torch.tensor([[[[2.0, 4.0]], [[1.5, -1.0]]]]),
    }
    for read, o_want in expected.items():
        o, S = linear_attention_recurrent(**x, read=read)
        assert torch.equal(o, o_want), f"read={read}: outputs {o.tolist()} != {o_want.tolist()}"
        assert torch.equal(S, S_2), f"read={read}: final state {S.tolist()} != {S_2.tolist()}"
        o_c, S_c = linear_attention_chunked(**x, read=read, chunk_size=16)
        assert_rel_close(o_c, o_want, TOL32, f"chunked outputs, read={read}")
        assert_rel_close(S_c, S_2, TOL32, f"chunked final state, read={read}")


@pytest.mark.parametrize("read", ["after", "before"])
def test_bfloat16_inputs_accumulate_in_float32(read):
    inputs = make_inputs(T=100, dtype=torch.bfloat16)
    got = run_with_grads(functools.partial(linear_attention_chunked, chunk_size=32), inputs,
                         read)
    want = run_with_grads(linear_attention_recurrent, inputs, read)
    assert got["o"].dtype == torch.bfloat16
    assert got["final_state"].dtype == torch.float32
    for name in want:
        assert_rel_close(got[name], want[name], TOL_BF16, name)
    # Against the float32 reference on the same (rounded) values: only the output's final
    # rounding to bfloat16 differs.
    exact = run_with_grads(linear_attention_recurrent,
                           {n: None if t is None else t.float() for n, t in inputs.items()}, read)
    assert_rel_close(got["o"], exact["o"], TOL_BF16, "bf16 outputs vs float32 reference")
    assert_rel_close(got["final_state"], exact["final_state"], TOL32,
                     "bf16 final state vs float32 reference")


@pytest.mark.parametrize("read", ["after", "before"])
def test_streaming_split_at_random_points_equals_one_call(read):
    T = 157
    inputs = make_inputs(T=T, seed=2)
    o_full, S_full = linear_attention_chunked(**inputs, read=read, chunk_size=16)
    cuts = sorted(torch.randperm(T - 1, generator=torch.Generator().manual_seed(5))[:5]
                  .add(1).tolist())
    S, pieces = inputs["initial_state"], []
    for lo, hi in zip([0] + cuts, cuts + [T]):
        part = {n: inputs[n][:, lo:hi] for n in ("q", "k", "v", "beta", "decay")}
        o, S = linear_attention_chunked(**part, initial_state=S, read=read, chunk_size=16)
        pieces.append(o)
    assert_rel_close(torch.cat(pieces, dim=1), o_full, TOL32, f"outputs, cuts at {cuts}")
    assert_rel_close(S, S_full, TOL32, f"final state, cuts at {cuts}")


@pytest.mark.parametrize("decay", [False, True], ids=["nodecay", "decay"])
@pytest.mark.parametrize("read", ["after", "before"])
def test_step_repeated_equals_recurrence(read, decay):
    inputs = make_inputs(T=40, decay=decay)
    o_ref, S_ref = linear_attention_recurrent(**inputs, read=read)
    S = inputs["initial_state"]
    S_before = S.clone()
    outs = []
    for t in range(40):
        a = None if inputs["decay"] is None else inputs["decay"][:, t]
        o, S = linear_attention_step(inputs["q"][:, t], inputs["k"][:, t], inputs["v"][:, t],
                                     inputs["beta"][:, t], a, S, read=read)
        outs.append(o)
    assert torch.equal(inputs["initial_state"], S_before), "step modified its input state"
    assert_rel_close(torch.stack(outs, 1), o_ref, TOL32, "step outputs")
    assert_rel_close(S, S_ref, TOL32, "step final state")


@pytest.mark.parametrize("state_clip", [None, 0.5], ids=["exact", "clipped"])
def test_write_equals_the_state_of_step(state_clip):
    x = make_inputs(T=1)
    args = [x[n][:, 0] for n in ("k", "v", "beta", "decay")]
    _, S_step = linear_attention_step(x["q"][:, 0], *args, x["initial_state"])
    S_write = linear_attention_write(*args, x["initial_state"], state_clip=state_clip)
    if state_clip is None:
        assert torch.equal(S_write, S_step)
    else:
        assert torch.equal(S_write, S_step.clamp(-state_clip, state_clip))
        assert S_write.abs().max() <= state_clip


def test_zero_length_sequence_returns_initial_state():
    inputs = make_inputs(T=0)
    for fn in (linear_attention_chunked, linear_attention_recurrent):
        o, S = fn(**inputs)
        assert o.shape == (2, 0, 3, 20)
        assert torch.equal(S, inputs["initial_state"])


def test_inputs_are_not_modified():
    inputs = make_inputs(T=70)
    before = {n: t.clone() for n, t in inputs.items()}
    linear_attention_chunked(**inputs, chunk_size=16)
    for n, t in inputs.items():
        assert torch.equal(t, before[n]), f"{n} was modified in place"


def _bad(**changes):
    x = make_inputs(T=5)
    x.update(changes)
    return x


BAD_CASES = [
    ("k-shape", lambda: _bad(k=torch.randn(2, 5, 3, 11)), "k must have the shape of q"),
    ("v-T", lambda: _bad(v=torch.randn(2, 6, 3, 20)), "v must have shape"),
    ("q-3d", lambda: _bad(q=torch.randn(2, 5, 12), k=torch.randn(2, 5, 12)), "q must have shape"),
    ("beta-shape", lambda: _bad(beta=torch.rand(2, 5)), "beta must have shape"),
    ("decay-shape", lambda: _bad(decay=torch.rand(2, 5, 3, 1)), "decay must have shape"),
    ("state-shape", lambda: _bad(initial_state=torch.randn(2, 3, 20, 12)),
     "initial_state must have shape"),
    ("beta-zero", lambda: _bad(beta=torch.zeros(2, 5, 3)), "beta must lie in (0, 1]"),
    ("decay-above-1", lambda: _bad(decay=torch.full((2, 5, 3), 1.5)), "decay must lie in (0, 1]"),
    ("int-v", lambda: _bad(v=torch.ones(2, 5, 3, 20, dtype=torch.long)),
     "v must have a floating dtype"),
]


@pytest.mark.parametrize("fn", [linear_attention_chunked, linear_attention_recurrent],
                         ids=["chunked", "recurrent"])
@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_arguments_raise_clear_errors(fn, case):
    _, make, message = case
    with pytest.raises(ValueError) as info:
        fn(**make())
    assert message in str(info.value), f"error {str(info.value)!r} does not say {message!r}"


def test_bad_read_mode_and_chunk_size():
    with pytest.raises(ValueError, match="read must be one of"):
        linear_attention_recurrent(**make_inputs(T=3), read="during")
    with pytest.raises(ValueError, match="chunk_size must be a positive power of two"):
        linear_attention_chunked(**make_inputs(T=3), chunk_size=48)


def test_step_and_write_validate_their_arguments():
    x = make_inputs(T=1)
    q, k, v, b, a = (x[n][:, 0] for n in ("q", "k", "v", "beta", "decay"))
    with pytest.raises(ValueError, match="state must have shape"):
        linear_attention_step(q, k, v, b, a, torch.zeros(2, 3, 12, 19))
    with pytest.raises(ValueError, match="read must be one of"):
        linear_attention_step(q, k, v, b, a, x["initial_state"], read="later")
    with pytest.raises(ValueError, match=r"q must have shape \[B, H, K\]"):
        linear_attention_step(x["q"], x["k"], x["v"], x["beta"], x["decay"], x["initial_state"])
    with pytest.raises(ValueError, match=r"k must have shape \[B, H, K\]"):
        linear_attention_write(x["k"], x["v"], x["beta"], x["decay"], x["initial_state"])
    with pytest.raises(ValueError, match="beta must lie in"):
        linear_attention_write(k, v, b * 0, a, x["initial_state"])
    # check_values=False skips only the range check: a zero β is a no-write.
    S = linear_attention_write(k, v, b * 0, a, x["initial_state"], check_values=False)
    assert_rel_close(S, a[..., None, None] * x["initial_state"], TOL32, "state after β = 0")


@pytest.mark.parametrize("fn", ["chunked", "recurrent", "step"])
def test_ops_compute_in_float32_under_autocast(fn):
    """A caller's bfloat16 autocast must not leak into the op (it computes in float32)."""
    inputs = make_inputs(T=1 if fn == "step" else 40)
    if fn == "step":
        inputs = {n: t[:, 0] if n != "initial_state" else t for n, t in inputs.items()}
        inputs["state"] = inputs.pop("initial_state")
        op = linear_attention_step
    else:
        op = {"chunked": functools.partial(linear_attention_chunked, chunk_size=16),
              "recurrent": linear_attention_recurrent}[fn]
    plain = op(**inputs, read="before")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = op(**inputs, read="before")
    for name, want, got in zip(("o", "state"), plain, mixed):
        assert got.dtype == want.dtype, name
        assert torch.equal(got, want), name
