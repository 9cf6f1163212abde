"""Kuramoto dynamics on rings: the mean-field update against the explicit pairwise sum, the
reductions to classic Kuramoto and to 2-D AKOrN, gradients through every Euler step."""

from __future__ import annotations

import math

import pytest
import torch

from assoclm.ops.kuramoto import (
    block_coupling,
    integrate_kuramoto,
    kuramoto_velocity,
    kuramoto_velocity_naive,
    ring_index,
    ring_mean_field,
)
from assoclm.testing import assert_rel_close

SIZES = (4, 8, 16, 32)
N, R = sum(SIZES), len(SIZES)


def setup(seed=0, batch=(3, 5), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(*batch, N, generator=g, dtype=dtype) * 2 * math.pi
    omega = torch.randn(*batch, N, generator=g, dtype=dtype).tanh()
    K = torch.randn(R, R, generator=g, dtype=dtype)
    alpha = torch.randn(R, generator=g, dtype=dtype) * 0.5
    center = torch.rand(R, generator=g, dtype=dtype)
    drive = torch.randn(*batch, N, generator=g, dtype=dtype) * 0.3
    return theta, omega, K, alpha, center, drive


def test_ring_index_and_mean_field():
    index = ring_index(SIZES)
    assert index.tolist() == sum(([r] * n for r, n in enumerate(SIZES)), [])
    theta = setup()[0]
    zc, zs = ring_mean_field(theta, SIZES)
    lo = 0
    for r, n in enumerate(SIZES):
        z = torch.exp(1j * theta[..., lo:lo + n]).mean(-1)
        assert_rel_close(zc[..., r], z.real, 1e-12, f"Re Z ring {r}")
        assert_rel_close(zs[..., r], z.imag, 1e-12, f"Im Z ring {r}")
        lo += n


def test_mean_field_equals_pairwise_sum_for_block_constant_coupling():
    theta, omega, K, alpha, center, drive = setup()
    index = ring_index(SIZES)
    fast = kuramoto_velocity(theta, omega, K, SIZES, alpha, 0.7, center, drive)
    naive = kuramoto_velocity_naive(theta, omega, block_coupling(K, SIZES), alpha[index], 0.7,
                                    center[index], drive)
    assert_rel_close(fast, naive, 1e-12, "mean field vs O(N²) sum")
    # the pairwise matrix really is block-constant with C_ij = K_{r(i) r(j)} / n_{r(j)}
    C = block_coupling(K, SIZES)
    assert C[0, 5] == K[0, 1] / 8 and C[13, 2] == K[2, 0] / 4 and C[5, 30] == K[1, 3] / 32


def test_per_token_modulated_parameters_broadcast():
    theta, omega, K, alpha, center, drive = setup()
    g = torch.Generator().manual_seed(3)
    K_tok = K * (1 + torch.rand(3, 5, R, 1, generator=g, dtype=K.dtype))
    a_tok = alpha + torch.rand(3, 5, R, generator=g, dtype=K.dtype)
    fast = kuramoto_velocity(theta, omega, K_tok, SIZES, a_tok, 0.2, center, drive)
    index = ring_index(SIZES)
    for b, t in [(0, 0), (2, 4)]:
        C = block_coupling(K_tok[b, t], SIZES)
        naive = kuramoto_velocity_naive(theta[b, t], omega[b, t], C, a_tok[b, t][index], 0.2,
                                        center[index], drive[b, t])
        assert_rel_close(fast[b, t], naive, 1e-12, f"token {b},{t}")


def test_dense_uniform_coupling_is_classic_kuramoto():
    # K_rs = K·n_s/N makes every pair coupled by K/N: dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i)
    theta, omega = setup()[:2]
    K = 1.7
    gains = torch.tensor(SIZES, dtype=torch.float64).expand(R, R) * K / N
    fast = kuramoto_velocity(theta, omega, gains, SIZES)
    classic = omega + K / N * torch.sin(theta[..., None, :] - theta[..., :, None]).sum(-1)
    assert_rel_close(fast, classic, 1e-12, "classic Kuramoto")
    # and its order-parameter form K·R·sin(ψ − θ)
    z = torch.exp(1j * theta).mean(-1, keepdim=True)
    assert_rel_close(fast, omega + K * z.abs() * torch.sin(z.angle() - theta), 1e-12,
                     "order-parameter form")


def test_matches_two_dimensional_akorn_angular_velocity():
    # AKOrN (Miyato et al. 2024) with 2-D oscillators x_i = (cos θ_i, sin θ_i): the velocity
    # Ω x_i + Proj_{x_i}(c + Σ_j J_ij x_j) moves θ_i at ω_i + t_i·(c + Σ_j J_ij x_j), t_i the
    # unit tangent (−sin θ_i, cos θ_i). Uniform J = K/N, stimulus c = g·(cos φ, sin φ).
    theta, omega = setup(batch=(4,))[:2]
    K, gain, phi = 0.9, 0.4, 1.1
    gains = torch.tensor(SIZES, dtype=torch.float64).expand(R, R) * K / N
    ours = kuramoto_velocity(theta, omega, gains, SIZES, center_phase=phi,
                             center_gain=torch.full((R,), gain, dtype=torch.float64))
    x = torch.stack((theta.cos(), theta.sin()), -1)                     # [B, N, 2]
    field = K / N * x.sum(-2, keepdim=True) + gain * torch.tensor([math.cos(phi), math.sin(phi)],
                                                                  dtype=torch.float64)
    tangent = torch.stack((-theta.sin(), theta.cos()), -1)
    akorn = omega + (tangent * field).sum(-1)
    assert_rel_close(ours, akorn, 1e-12, "2-D AKOrN")


def test_integration_is_euler_on_the_velocity_and_synchronises():
    theta, omega, K, alpha, center, drive = setup()
    out = integrate_kuramoto(theta, omega, K, SIZES, steps=3, dt=0.25, frustration=alpha,
                             center_omega=0.3, center_gain=center, drive=drive)
    ref = theta
    for step in range(3):
        ref = ref + 0.25 * kuramoto_velocity(ref, omega, K, SIZES, alpha, 0.3 * step * 0.25,
                                             center, drive)
    assert_rel_close(out, ref, 1e-12, "Euler steps")
    # strong uniform coupling and no spread of frequencies: the order parameter grows to ~1
    strong = torch.tensor(SIZES, dtype=torch.float64).expand(R, R) * 4.0 / N
    th = integrate_kuramoto(theta, torch.zeros_like(omega), strong, SIZES, steps=200, dt=0.1)
    order0 = torch.exp(1j * theta).mean(-1).abs().mean()
    order = torch.exp(1j * th).mean(-1).abs().mean()
    assert order0 < 0.6 and order > 0.99


def test_gradients_flow_through_every_euler_step():
    theta, omega, K, alpha, center, drive = setup(batch=(2,))
    leaves = [t.clone().requires_grad_() for t in (theta, omega, K, alpha, center, drive)]
    out = integrate_kuramoto(leaves[0], leaves[1], leaves[2], SIZES, steps=4, dt=0.5,
                             frustration=leaves[3], center_omega=0.2, center_gain=leaves[4],
                             drive=leaves[5])
    out.sin().sum().backward()
    for t in leaves:
        assert t.grad is not None and t.grad.abs().sum() > 0
    # the gradient of a 4-step integration is not that of 1 step: all steps are in the graph
    th = theta.clone().requires_grad_()
    integrate_kuramoto(th, omega, K, SIZES, steps=1).sin().sum().backward()
    th4 = theta.clone().requires_grad_()
    integrate_kuramoto(th4, omega, K, SIZES, steps=4).sin().sum().backward()
    assert (th.grad - th4.grad).abs().max() > 1e-3
    # finite-difference check of one coordinate in float64
    eps, i = 1e-6, 7
    f = lambda t: integrate_kuramoto(t, omega, K, SIZES, steps=4).sin().sum()  # noqa: E731
    bump = torch.zeros_like(theta)
    bump[0, i] = eps
    fd = (f(theta + bump) - f(theta - bump)) / (2 * eps)
    assert abs(float(fd) - float(th4.grad[0, i])) < 1e-6


@pytest.mark.parametrize("bad, match", [
    (dict(ring_sizes=(4, 0)), "ring_sizes"),
    (dict(theta_n=5), "theta and omega"),
    (dict(coupling=(3, 3)), "coupling"),
])
def test_bad_arguments_are_named(bad, match):
    sizes = bad.get("ring_sizes", (4, 8))
    n = bad.get("theta_n", 12)
    theta = torch.zeros(2, n)
    K = torch.zeros(*bad.get("coupling", (2, 2)))
    with pytest.raises(ValueError, match=match):
        kuramoto_velocity(theta, torch.zeros_like(theta), K, sizes)
    with pytest.raises(ValueError, match="steps"):
        integrate_kuramoto(torch.zeros(12), torch.zeros(12), torch.zeros(2, 2), (4, 8), steps=-1)
