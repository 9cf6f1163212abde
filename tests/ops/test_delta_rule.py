"""The chunked and one-step delta rule against the per-token reference (and fla's)."""

from __future__ import annotations

import functools

import pytest
import torch

from assoclm.bench.fla_peer import fla_naive
from assoclm.ops.delta_rule import (
    delta_rule_chunked,
    delta_rule_recurrent,
    delta_rule_step,
    delta_rule_write,
)
from assoclm.ops.delta_rule.gated import delta_rule_via_gated
from assoclm.testing import assert_rel_close, run_with_grads
from assoclm.testing import memory_op_inputs as make_inputs

TOL32 = 1e-5
TOL_BF16 = 1e-2
HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device"),
])]
NAMES = ("q", "k", "v", "beta", "decay", "initial_state")






@functools.cache
def reference(T: int, decay: bool, init: bool, read: str, device: str) -> dict:
    return run_with_grads(delta_rule_recurrent, make_inputs(T=T, decay=decay, init=init,
                                                            device=device), read)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("read", ["after", "before"])
@pytest.mark.parametrize("init", [False, True], ids=["S0=0", "S0"])
@pytest.mark.parametrize("decay", [False, True], ids=["nodecay", "decay"])
@pytest.mark.parametrize("chunk_size", [16, 32, 64], ids=lambda c: f"C{c}")
@pytest.mark.parametrize("T", [1, 7, 63, 64, 100, 1000], ids=lambda t: f"T{t}")
def test_chunked_matches_recurrent(T, chunk_size, decay, init, read, device):
    inputs = make_inputs(T=T, decay=decay, init=init, device=device)
    got = run_with_grads(functools.partial(delta_rule_chunked, chunk_size=chunk_size), inputs, read)
    want = reference(T, decay, init, read, device)
    assert got.keys() == want.keys()
    for name in want:
        assert_rel_close(got[name], want[name], TOL32, name)


@pytest.mark.parametrize("read", ["after", "before"])
def test_chunked_matches_recurrent_under_strong_decay(read):
    # α down to 1e-3 makes in-chunk log-decays span ~ -400: masked exps must not overflow.
    inputs = make_inputs(T=150, decay_range=(1e-3, 1.0), seed=3)
    got = run_with_grads(delta_rule_chunked, inputs, read)
    want = run_with_grads(delta_rule_recurrent, inputs, read)
    for name in want:
        assert_rel_close(got[name], want[name], TOL32, name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("read", ["after", "before"])
def test_bfloat16_inputs_accumulate_in_float32(read, device):
    inputs = make_inputs(T=100, device=device, dtype=torch.bfloat16)
    got = run_with_grads(functools.partial(delta_rule_chunked, chunk_size=32), inputs, read)
    want = run_with_grads(delta_rule_recurrent, inputs, read)
    assert got["o"].dtype == torch.bfloat16
    assert got["final_state"].dtype == torch.float32
    for name in want:
        assert_rel_close(got[name], want[name], TOL_BF16, name)


@pytest.mark.parametrize("fn", [delta_rule_chunked, delta_rule_recurrent],
                         ids=["chunked", "recurrent"])
@pytest.mark.parametrize("read", ["after", "before"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_split_at_random_points_equals_one_call(fn, read, seed):
    T = 157
    inputs = make_inputs(T=T, seed=seed)
    o_full, S_full = fn(**inputs, read=read)
    gen = torch.Generator().manual_seed(100 + seed)
    cuts = sorted(torch.randperm(T - 1, generator=gen)[:5].add(1).tolist())
    S = inputs["initial_state"]
    pieces = []
    for lo, hi in zip([0] + cuts, cuts + [T]):
        part = {n: inputs[n][:, lo:hi] for n in ("q", "k", "v", "beta", "decay")}
        o, S = fn(**part, initial_state=S, read=read)
        pieces.append(o)
    assert_rel_close(torch.cat(pieces, dim=1), o_full, TOL32, f"outputs, cuts at {cuts}")
    assert_rel_close(S, S_full, TOL32, f"final state, cuts at {cuts}")


@pytest.mark.parametrize("decay", [False, True], ids=["nodecay", "decay"])
@pytest.mark.parametrize("read", ["after", "before"])
def test_step_repeated_equals_recurrence(read, decay):
    inputs = make_inputs(T=40, decay=decay)
    o_ref, S_ref = delta_rule_recurrent(**inputs, read=read)
    S = inputs["initial_state"]
    S_before = S.clone()
    outs = []
    for t in range(40):
        a = None if inputs["decay"] is None else inputs["decay"][:, t]
        o, S = delta_rule_step(inputs["q"][:, t], inputs["k"][:, t], inputs["v"][:, t],
                               inputs["beta"][:, t], a, S, read=read)
        outs.append(o)
    assert torch.equal(inputs["initial_state"], S_before), "step modified its input state"
    assert_rel_close(torch.stack(outs, 1), o_ref, TOL32, "step outputs")
    assert_rel_close(S, S_ref, TOL32, "step final state")


def test_zero_length_sequence_returns_initial_state():
    inputs = make_inputs(T=0)
    for fn in (delta_rule_chunked, delta_rule_recurrent):
        o, S = fn(**inputs)
        assert o.shape == (2, 0, 3, 20)
        assert torch.equal(S, inputs["initial_state"])


def test_inputs_are_not_modified():
    inputs = make_inputs(T=70)
    before = {n: t.clone() for n, t in inputs.items()}
    delta_rule_chunked(**inputs, chunk_size=16)
    for n, t in inputs.items():
        assert torch.equal(t, before[n]), f"{n} was modified in place"


def test_chunked_double_backward_fails_clearly():
    """The backward pass is written by hand, not traced: differentiating it again must raise
    instead of silently returning zeros."""
    inputs = {n: t.requires_grad_() for n, t in make_inputs(T=20).items()}
    o, _ = delta_rule_chunked(**inputs, chunk_size=8)
    (dq,) = torch.autograd.grad(o.square().sum(), inputs["q"], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|differentiate twice"):
        dq.sum().backward()


@pytest.mark.parametrize("read", ["after", "before"])
def test_chunked_backward_passes_gradcheck_in_float64(read):
    """The hand-derived backward of the chunked op, against finite differences in float64.

    The autograd Function is called directly (the public op computes in float32), with b and
    b_prev as independent inputs and a padded last chunk (T = 10, C = 4)."""
    from assoclm.ops.chunking import Chunks
    from assoclm.ops.delta_rule.chunk import _ChunkedDeltaRule

    B, T, H, K, V, C = 1, 10, 2, 3, 4, 4
    chunks = Chunks(B, T, H, C)
    N, G = chunks.N, B * H
    g = torch.Generator().manual_seed(5)
    f64 = {"dtype": torch.float64}
    q = torch.randn(B, N * C, H, K, generator=g, **f64)
    k = torch.nn.functional.normalize(torch.randn(B, N * C, H, K, generator=g, **f64), dim=-1)
    v = torch.randn(B, N * C, H, V, generator=g, **f64)
    beta = 0.1 + 0.9 * torch.rand(N, G, C, generator=g, **f64)
    log_a = torch.log(0.5 + 0.5 * torch.rand(N, G, C, generator=g, **f64))
    b = log_a.cumsum(-1)
    b_prev = b - log_a + 0.01 * torch.randn(N, G, C, generator=g, **f64)  # independent input
    S0 = torch.randn(G, K, V, generator=g, **f64)
    args = [x.requires_grad_() for x in (q, k, v, beta, b, b_prev, S0)]
    assert torch.autograd.gradcheck(
        lambda *xs: _ChunkedDeltaRule.apply(*xs, read == "after", chunks), args,
        eps=1e-6, atol=1e-7, rtol=1e-5,
    )


# Peer check: flash-linear-attention's own pure-PyTorch reference, through the mapping
# β' = β/α, v' = α·v, g = log α (and the q-shift for "before" reads).
@pytest.mark.parametrize("read", ["after", "before"])
@pytest.mark.parametrize("init", [False, True], ids=["S0=0", "S0"])
@pytest.mark.parametrize("decay", [False, True], ids=["nodecay", "decay"])
@pytest.mark.parametrize("T", [1, 7, 100], ids=lambda t: f"T{t}")
def test_matches_fla_naive_recurrent_gated_delta_rule(T, decay, init, read):
    inputs = make_inputs(T=T, decay=decay, init=init, seed=7)
    o_ref, S_ref = delta_rule_recurrent(**inputs, read=read)
    o_fla, S_fla = delta_rule_via_gated(fla_naive().naive_recurrent_gated_delta_rule,
                                        **inputs, read=read)
    assert_rel_close(o_fla, o_ref, TOL32, "outputs vs fla naive_recurrent_gated_delta_rule")
    assert_rel_close(S_fla, S_ref, TOL32, "final state vs fla naive_recurrent_gated_delta_rule")


def test_matches_fla_naive_chunk_gated_delta_rule():
    inputs = make_inputs(T=130, seed=8)
    o_ref, S_ref = delta_rule_chunked(**inputs)
    o_fla, S_fla = delta_rule_via_gated(fla_naive().naive_chunk_gated_delta_rule, **inputs,
                                        chunk_size=64)
    assert_rel_close(o_fla, o_ref, TOL32, "outputs vs fla naive_chunk_gated_delta_rule")
    assert_rel_close(S_fla, S_ref, TOL32, "final state vs fla naive_chunk_gated_delta_rule")


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
    ("beta-above-1", lambda: _bad(beta=torch.full((2, 5, 3), 1.5)), "beta must lie in (0, 1]"),
    ("beta-nan", lambda: _bad(beta=torch.full((2, 5, 3), float("nan"))), "beta must lie in"),
    ("decay-negative", lambda: _bad(decay=-torch.rand(2, 5, 3)), "decay must lie in (0, 1]"),
    ("int-q", lambda: _bad(q=torch.ones(2, 5, 3, 12, dtype=torch.long)),
     "q must have a floating dtype"),
    ("int-beta", lambda: _bad(beta=torch.ones(2, 5, 3, dtype=torch.int32)),
     "beta must have a floating dtype"),
]


@pytest.mark.parametrize("fn", [delta_rule_chunked, delta_rule_recurrent],
                         ids=["chunked", "recurrent"])
@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_arguments_raise_clear_errors(fn, case):
    _, make, message = case
    with pytest.raises(ValueError, match=None) as info:
        fn(**make())
    assert message in str(info.value), f"error {str(info.value)!r} does not say {message!r}"


@pytest.mark.parametrize("fn", [delta_rule_chunked, delta_rule_recurrent],
                         ids=["chunked", "recurrent"])
def test_bad_read_mode(fn):
    with pytest.raises(ValueError, match="read must be one of"):
        fn(**make_inputs(T=3), read="during")


@pytest.mark.parametrize("chunk_size", [0, -4, 3, 48, 2.0, True])
def test_chunk_size_must_be_power_of_two(chunk_size):
    with pytest.raises(ValueError, match="chunk_size must be a positive power of two"):
        delta_rule_chunked(**make_inputs(T=3), chunk_size=chunk_size)


def test_step_validates_shapes_and_read():
    x = make_inputs(T=1)
    q, k, v, b, a = (x[n][:, 0] for n in ("q", "k", "v", "beta", "decay"))
    with pytest.raises(ValueError, match="state must have shape"):
        delta_rule_step(q, k, v, b, a, torch.zeros(2, 3, 12, 19))
    with pytest.raises(ValueError, match="read must be one of"):
        delta_rule_step(q, k, v, b, a, x["initial_state"], read="later")
    with pytest.raises(ValueError, match="q must have shape"):
        delta_rule_step(x["q"], x["k"], x["v"], x["beta"], x["decay"], x["initial_state"])


@pytest.mark.parametrize("clips", [(None, None), (0.1, 0.5)], ids=["exact", "clipped"])
def test_write_equals_the_state_of_step(clips):
    x = make_inputs(T=1)
    args = [x[n][:, 0] for n in ("k", "v", "beta", "decay")]
    _, S_step = delta_rule_step(x["q"][:, 0], *args, x["initial_state"],
                                error_clip=clips[0], state_clip=clips[1])
    S_write = delta_rule_write(*args, x["initial_state"], error_clip=clips[0],
                               state_clip=clips[1])
    assert torch.equal(S_write, S_step)
    if clips[1] is not None:
        assert S_write.abs().max() <= clips[1]


def test_check_values_false_skips_only_the_range_check():
    x = make_inputs(T=6)
    x["beta"] = x["beta"].clone()
    x["beta"][:, 2] = 0.0  # a gate that underflowed: a harmless no-write
    with pytest.raises(ValueError, match="beta must lie in"):
        delta_rule_chunked(**x)
    o, S = delta_rule_chunked(**x, check_values=False)
    o_ref, S_ref = delta_rule_recurrent(**{**x, "beta": x["beta"].clamp_min(1e-30)})
    assert_rel_close(o, o_ref, TOL32, "outputs with a zero beta")
    with pytest.raises(ValueError, match="k must have the shape of q"):
        delta_rule_chunked(**{**x, "k": torch.randn(2, 6, 3, 11)}, check_values=False)
    k, v, b, a = (x[n][:, 0] for n in ("k", "v", "beta", "decay"))
    with pytest.raises(ValueError, match=r"k must have shape \[B, H, K\]"):
        delta_rule_write(x["k"], x["v"], x["beta"], x["decay"], x["initial_state"])
    with pytest.raises(ValueError, match="beta must lie in"):
        delta_rule_write(k, v, b * 0, a, x["initial_state"])


@pytest.mark.parametrize("fn", ["chunked", "recurrent", "step"])
def test_ops_compute_in_float32_under_autocast(fn):
    """A caller's bfloat16 autocast must not leak into the op (it computes in float32)."""
    inputs = make_inputs(T=1 if fn == "step" else 40)
    if fn == "step":
        inputs = {n: t[:, 0] if n not in ("initial_state",) else t for n, t in inputs.items()}
        inputs["state"] = inputs.pop("initial_state")
        op = delta_rule_step
    else:
        op = {"chunked": functools.partial(delta_rule_chunked, chunk_size=16),
              "recurrent": delta_rule_recurrent}[fn]
    plain = run_with_grads(op, inputs, "before")
    # As in training: forward under autocast, backward outside it.
    mixed = run_with_grads(op, inputs, "before",
                           forward_context=torch.autocast("cpu", dtype=torch.bfloat16))
    for name, want in plain.items():
        assert mixed[name].dtype == want.dtype, name
        assert torch.equal(mixed[name], want), name
