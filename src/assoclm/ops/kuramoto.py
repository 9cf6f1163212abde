"""Kuramoto phase dynamics on concentric rings, coupled through per-ring mean fields.

N oscillators with phases θ [..., N] are split into R rings of sizes n_1 .. n_R (ring r(i)
holds oscillator i; rings are consecutive blocks). Ring s has the order parameter (its mean
field)

    Z_s = R_s e^{iψ_s} = (1 / n_s) Σ_{j ∈ s} e^{iθ_j}.

One Euler step of the ring-coupled, frustrated, centre-pulled and driven Kuramoto model:

    dθ_i/dt = ω_i                                                 natural frequency
            + Σ_s K_{r(i) s} R_s sin(ψ_s − θ_i − α_{r(i)})        ring-to-ring coupling
            + c_{r(i)} sin(φ(t) − θ_i)                            pull of the centre phase
            + u_i                                                 external drive
    θ_i ← θ_i + dt · dθ_i/dt,        φ(t) = center_omega · t,      t = step · dt

K [R, R] is the ring-gain matrix, α [R] the per-ring frustration (Sakaguchi & Kuramoto
1986: a phase lag α turns the pull towards ψ into one towards ψ − α), c [R] the centre gain.
The coupling term is Im(F_{r(i)} e^{−i(θ_i + α_{r(i)})}) with F_r = Σ_s K_{rs} Z_s, so a step
costs O(N·R) (the mean fields) + O(R²) (the ring mixing), not O(N²).

Pairwise form (the naive reference, :func:`kuramoto_velocity_naive`): since
R_s sin(ψ_s − θ) = (1/n_s) Σ_{j∈s} sin(θ_j − θ), the coupling term equals

    Σ_j C_ij sin(θ_j − θ_i − α_{r(i)})      with block-constant C_ij = K_{r(i) r(j)} / n_{r(j)}.

Classic Kuramoto (Kuramoto 1975) is the special case K_{rs} = K · n_s / N (so C_ij = K / N for
every pair), α = 0, c = 0, u = 0: dθ_i/dt = ω_i + (K/N) Σ_j sin(θ_j − θ_i). With the centre
term kept it is the two-dimensional AKOrN update (Miyato et al. 2024, "Artificial Kuramoto
Oscillatory Neurons", arXiv 2410.13821): oscillators x_i = (cos θ_i, sin θ_i) on the circle
move along Ω x_i + Proj_{x_i}(c_i + Σ_j J_ij x_j), whose angular component is exactly
ω_i + Σ_j J_ij sin(θ_j − θ_i) + |c_i| sin(arg c_i − θ_i). The tests check both reductions.

Per-token modulation: ``coupling``, ``frustration`` and ``center_gain`` may carry leading
batch dimensions ([..., R, R] and [..., R]) so that a caller can modulate them per token.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

DEFAULT_RING_SIZES: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256)


def check_ring_sizes(ring_sizes: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(ring_sizes)
    if not sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes):
        raise ValueError(f"ring_sizes must be a non-empty list of positive integers; "
                         f"got {list(ring_sizes)}")
    return sizes


def ring_index(ring_sizes: Sequence[int], device=None) -> torch.Tensor:
    """[N] long: the ring of each oscillator (rings are consecutive blocks)."""
    sizes = check_ring_sizes(ring_sizes)
    return torch.tensor([r for r, n in enumerate(sizes) for _ in range(n)], device=device)


def ring_average_matrix(ring_sizes: Sequence[int], device=None,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """P [N, R] with P_ir = 1/n_r when oscillator i is on ring r: mean over a ring = x @ P."""
    sizes = check_ring_sizes(ring_sizes)
    index = ring_index(sizes, device)
    P = torch.zeros(len(index), len(sizes), device=device, dtype=dtype)
    P[torch.arange(len(index), device=device), index] = 1.0
    return P / torch.tensor(sizes, device=device, dtype=dtype)


def ring_mean_field(theta: torch.Tensor, ring_sizes: Sequence[int]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """θ [..., N] -> (Re Z, Im Z), each [..., R]: the order parameter of every ring."""
    P = ring_average_matrix(ring_sizes, theta.device, theta.dtype)
    return theta.cos() @ P, theta.sin() @ P


def _per_ring(value: torch.Tensor | None, R: int, name: str) -> torch.Tensor | None:
    if value is not None and value.shape[-1] != R:
        raise ValueError(f"{name} must end in the number of rings {R}; got {list(value.shape)}")
    return value


def kuramoto_velocity(theta: torch.Tensor, omega: torch.Tensor, coupling: torch.Tensor,
                      ring_sizes: Sequence[int], frustration: torch.Tensor | None = None,
                      center_phase: torch.Tensor | float | None = None,
                      center_gain: torch.Tensor | None = None,
                      drive: torch.Tensor | None = None) -> torch.Tensor:
    """dθ/dt [..., N] through per-ring mean fields, O(N·R) (equation in the module docstring).

    theta, omega, drive: [..., N]; coupling K: [R, R] or [..., R, R] (row r: how ring r is
    pulled by each ring s); frustration α, center_gain c: [R] or [..., R]; center_phase φ: a
    float or a tensor broadcasting against [...].
    """
    sizes = _check_velocity_args(theta, omega, coupling, ring_sizes, frustration, center_gain)
    return _velocity(theta, omega, coupling, ring_index(sizes, theta.device),
                     ring_average_matrix(sizes, theta.device, theta.dtype), frustration,
                     center_phase, center_gain, drive)


def _check_velocity_args(theta, omega, coupling, ring_sizes, frustration, center_gain
                         ) -> tuple[int, ...]:
    sizes = check_ring_sizes(ring_sizes)
    R, N = len(sizes), sum(sizes)
    if theta.shape[-1] != N or omega.shape != theta.shape:
        raise ValueError(f"theta and omega must be [..., {N}] (the ring sizes sum to {N}); "
                         f"got {list(theta.shape)} and {list(omega.shape)}")
    if coupling.shape[-2:] != (R, R):
        raise ValueError(f"coupling must be [..., {R}, {R}]; got {list(coupling.shape)}")
    _per_ring(frustration, R, "frustration")
    _per_ring(center_gain, R, "center_gain")
    return sizes


def _velocity(theta, omega, coupling, index, average, frustration, center_phase, center_gain,
              drive) -> torch.Tensor:
    # index [N]: each oscillator's ring; average P [N, R]: the ring means (checked by caller)
    zc, zs = theta.cos() @ average, theta.sin() @ average          # Re Z, Im Z [..., R]
    # F_r = Σ_s K_rs Z_s, [..., R]
    fc = (coupling @ zc.unsqueeze(-1)).squeeze(-1)
    fs = (coupling @ zs.unsqueeze(-1)).squeeze(-1)
    phase = theta if frustration is None else theta + frustration[..., index]
    # Im(F e^{-i(θ + α)}) = F_im cos(θ + α) − F_re sin(θ + α)
    velocity = omega + fs[..., index] * phase.cos() - fc[..., index] * phase.sin()
    if center_gain is not None and center_phase is not None:
        if isinstance(center_phase, torch.Tensor):
            center_phase = center_phase.unsqueeze(-1)
        velocity = velocity + center_gain[..., index] * torch.sin(center_phase - theta)
    if drive is not None:
        velocity = velocity + drive
    return velocity


def kuramoto_velocity_naive(theta: torch.Tensor, omega: torch.Tensor, pairwise: torch.Tensor,
                            frustration: torch.Tensor | None = None,
                            center_phase: float | None = None,
                            center_gain: torch.Tensor | None = None,
                            drive: torch.Tensor | None = None) -> torch.Tensor:
    """The explicit O(N²) sum: dθ_i/dt = ω_i + Σ_j C_ij sin(θ_j − θ_i − α_i)
    + c_i sin(φ − θ_i) + u_i, with every per-oscillator quantity given per oscillator
    (theta, omega, frustration, center_gain, drive [..., N]; pairwise C [N, N])."""
    lag = torch.zeros_like(theta) if frustration is None else frustration
    diff = theta.unsqueeze(-2) - theta.unsqueeze(-1) - lag.unsqueeze(-1)  # [..., i, j]
    velocity = omega + (pairwise * diff.sin()).sum(-1)
    if center_gain is not None and center_phase is not None:
        velocity = velocity + center_gain * torch.sin(center_phase - theta)
    if drive is not None:
        velocity = velocity + drive
    return velocity


def block_coupling(coupling: torch.Tensor, ring_sizes: Sequence[int]) -> torch.Tensor:
    """The pairwise C [N, N] equivalent to ring gains K [R, R]: C_ij = K_{r(i) r(j)} / n_{r(j)}."""
    sizes = check_ring_sizes(ring_sizes)
    index = ring_index(sizes, coupling.device)
    n = torch.tensor(sizes, device=coupling.device, dtype=coupling.dtype)
    return coupling[index][:, index] / n[index]


def integrate_kuramoto(theta: torch.Tensor, omega: torch.Tensor, coupling: torch.Tensor,
                       ring_sizes: Sequence[int], steps: int = 4, dt: float = 0.5,
                       frustration: torch.Tensor | None = None, center_omega: float = 0.0,
                       center_gain: torch.Tensor | None = None,
                       drive: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` explicit Euler steps of :func:`kuramoto_velocity` from θ [..., N]; the
    centre phase is φ = center_omega · step · dt. Differentiable through every step.
    Returns the final phases [..., N]."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer; got {steps!r}")
    if not dt > 0:
        raise ValueError(f"dt must be > 0; got {dt!r}")
    sizes = _check_velocity_args(theta, omega, coupling, ring_sizes, frustration, center_gain)
    # the ring layout is built once, not at every step
    index = ring_index(sizes, theta.device)
    average = ring_average_matrix(sizes, theta.device, theta.dtype)
    for step in range(steps):
        velocity = _velocity(theta, omega, coupling, index, average, frustration,
                             center_omega * step * dt, center_gain, drive)
        theta = theta + dt * velocity
    return theta
