"""The fixed-point solver: convergence, exact implicit gradients, JFB's direction, memory."""

from __future__ import annotations

import pytest
import torch

from assoclm.bench.memory import saved_for_backward_bytes
from assoclm.ops.fixed_point import fixed_point
from assoclm.testing import assert_rel_close


def contractive_problem(B=3, n=6, scale=0.4, seed=0, dtype=torch.float64):
    """f(z) = tanh(W z + U x + b) with ‖W‖₂ = scale < 1: a contraction with one fixed point."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n, n, generator=g, dtype=dtype)
    W = scale * W / torch.linalg.matrix_norm(W, ord=2)
    U = torch.randn(n, n, generator=g, dtype=dtype)
    b = 0.1 * torch.randn(n, generator=g, dtype=dtype)
    x = torch.randn(B, n, generator=g, dtype=dtype)
    return W.requires_grad_(), U.requires_grad_(), b.requires_grad_(), x.requires_grad_()


def make_f(W, U, b, x):
    return lambda z: torch.tanh(z @ W.T + x @ U.T + b)


@pytest.mark.parametrize("method", ["plain", "damped", "anderson"])
def test_converges_to_the_fixed_point(method):
    W, U, b, x = contractive_problem(scale=0.9)
    f = make_f(W, U, b, x)
    kwargs = {"plain": {}, "damped": {"damping": 0.3}, "anderson": {"anderson": 5}}[method]
    with torch.no_grad():
        res = fixed_point(f, torch.zeros_like(x), max_steps=500, tol=1e-10, **kwargs)
        assert res.converged, f"{method}: residuals ended at {res.residuals[-1]:.2e}"
        assert (f(res.z) - res.z).norm() / res.z.norm() < 1e-9
    assert res.steps == len(res.residuals)
    # a contraction's residual falls; Anderson needs far fewer steps than plain iteration
    assert res.residuals[-1] < 1e-3 * res.residuals[0]


def test_anderson_needs_fewer_steps_than_plain_iteration():
    # a slowly contracting linear map: eigenvalues up to 0.97, so plain iteration crawls
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    W = Q @ torch.diag(torch.linspace(0.0, 0.97, 16, dtype=torch.float64)) @ Q.T
    x = torch.randn(4, 16, generator=g, dtype=torch.float64)

    def f(z):
        return z @ W.T + x

    with torch.no_grad():
        plain = fixed_point(f, torch.zeros_like(x), max_steps=1000, tol=1e-10)
        fast = fixed_point(f, torch.zeros_like(x), max_steps=1000, tol=1e-10, anderson=6)
    assert plain.converged and fast.converged
    assert fast.steps < plain.steps / 2, (fast.steps, plain.steps)
    assert_rel_close(fast.z, plain.z, 1e-8, "anderson vs plain solution")


def test_stops_at_max_steps_when_tolerance_is_not_met():
    W, U, b, x = contractive_problem(scale=0.9)
    with torch.no_grad():
        res = fixed_point(make_f(W, U, b, x), torch.zeros_like(x), max_steps=3, tol=0.0)
    assert res.steps == 3 and not res.converged


def _loss(z, seed=7):
    c = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed), dtype=z.dtype)
    return (z * c).sum() + 0.5 * (z**2).sum()


def _finite_difference_grads(params, loss_fn, eps=1e-6):
    grads = []
    for p in params:
        g = torch.zeros_like(p)
        flat = p.detach().view(-1)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + eps
            up = loss_fn()
            flat[i] = old - eps
            down = loss_fn()
            flat[i] = old
            g.view(-1)[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


def test_implicit_gradient_matches_finite_differences():
    W, U, b, x = contractive_problem(B=2, n=4, scale=0.7)
    params = [W, U, b, x]

    def solved_loss():
        with torch.no_grad():
            z = fixed_point(make_f(W, U, b, x), torch.zeros_like(x), max_steps=400,
                            tol=1e-14).z
        return _loss(z).item()

    res = fixed_point(make_f(W, U, b, x), torch.zeros_like(x), max_steps=400, tol=1e-14,
                      backward="implicit", backward_tol=1e-14, backward_max_steps=400)
    grads = torch.autograd.grad(_loss(res.z), params)
    assert res.backward_residuals and res.backward_residuals[-1] < 1e-12
    expected = _finite_difference_grads(params, solved_loss)
    for name, got, want in zip("WUbx", grads, expected):
        assert_rel_close(got, want, 1e-6, f"implicit d loss / d {name}")


def test_jfb_gradient_points_the_same_way_as_the_exact_one():
    W, U, b, x = contractive_problem(B=4, n=8, scale=0.6, seed=1)
    params = [W, U, b]

    def grads(**kwargs):
        res = fixed_point(make_f(W, U, b, x), torch.zeros_like(x), max_steps=300,
                          tol=1e-13, **kwargs)
        return torch.cat([g.flatten() for g in torch.autograd.grad(_loss(res.z), params)])

    exact = grads(backward="implicit", backward_tol=1e-13, backward_max_steps=300)
    jfb = grads(backward="jfb", grad_tail=1)
    cos = torch.nn.functional.cosine_similarity(jfb, exact, dim=0).item()
    assert cos > 0.5, f"JFB gradient cosine with the implicit gradient is {cos:.3f}"
    # and it is an approximation, not the same thing
    assert cos < 1 - 1e-6


def test_backprop_through_every_step_equals_unrolled_iteration():
    W, U, b, x = contractive_problem(B=2, n=5)
    f = make_f(W, U, b, x)
    res = fixed_point(f, torch.zeros_like(x), max_steps=6, tol=0.0, grad_tail=6)
    z = torch.zeros_like(x)
    for _ in range(6):
        z = f(z)
    assert_rel_close(res.z, z, 1e-12, "z")
    for name, got, want in zip("WUb", torch.autograd.grad(_loss(res.z), [W, U, b]),
                               torch.autograd.grad(_loss(z), [W, U, b])):
        assert_rel_close(got, want, 1e-12, f"d/d{name}")


def _saved_bytes(steps: int, grad_tail: int) -> int:
    W, U, b, x = contractive_problem(B=8, n=64, dtype=torch.float32)
    return saved_for_backward_bytes(lambda: fixed_point(
        make_f(W, U, b, x), torch.zeros_like(x), max_steps=steps, tol=0.0, grad_tail=grad_tail))


def test_jfb_memory_does_not_grow_with_solver_depth():
    assert _saved_bytes(32, 1) == _saved_bytes(8, 1)
    # while backprop through every step grows with depth
    assert _saved_bytes(32, 32) > 3 * _saved_bytes(8, 8)


def test_callback_sees_every_iterate():
    W, U, b, x = contractive_problem()
    seen = []
    res = fixed_point(make_f(W, U, b, x), torch.zeros_like(x), max_steps=5, tol=0.0,
                      grad_tail=2, callback=lambda i, z: seen.append((i, z.requires_grad)))
    assert [i for i, _ in seen] == [1, 2, 3, 4, 5] and res.steps == 5
    assert not any(grad for _, grad in seen)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_steps": 0}, "max_steps"),
    ({"grad_tail": 0}, "grad_tail"),
    ({"anderson": 1}, "anderson"),
    ({"damping": 1.0}, "damping"),
    ({"tol": -1.0}, "tol"),
    ({"backward": "exact"}, "backward"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fixed_point(lambda z: z, torch.zeros(2, 3), **kwargs)


def test_integer_start_is_rejected():
    with pytest.raises(ValueError, match="floating-point"):
        fixed_point(lambda z: z, torch.zeros(2, 3, dtype=torch.long))
