"""Chaotic trajectories for latent-dynamics experiments: the logistic map and the Lorenz system.

Every generator is deterministic given ``seed`` (a local ``numpy.random.Generator``) and
returns float64 numpy arrays, time on axis 1. Both systems are chaotic: two trajectories that
start 1e-9 apart separate by a factor e^λ per unit of time (λ > 0, the largest Lyapunov
exponent) until they are as far apart as two random points on the attractor. No model,
however good, predicts far beyond ``log(1 / ε) / λ`` from an observation known to ε; the
exponents are given so that an experiment can compare its horizon with that limit.

- Logistic map (May 1976, "Simple mathematical models with very complicated dynamics",
  Nature 261): x_{t+1} = r·x_t·(1 − x_t). For 0 <= r <= 4 it maps [0, 1] into itself; at
  r = 3.9 it is chaotic with λ ≈ 0.49 per step.
- Lorenz system (Lorenz 1963, "Deterministic nonperiodic flow"): ẋ = σ(y − x),
  ẏ = x(ρ − z) − y, ż = xy − βz with the classic σ = 10, ρ = 28, β = 8/3 (λ ≈ 0.906 per unit
  of time), integrated by classical fourth-order Runge–Kutta with a fixed step ``dt``; a
  sample is taken every ``stride`` steps.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "LOGISTIC_LYAPUNOV_R39",
    "LORENZ_LYAPUNOV",
    "logistic_map",
    "logistic_step",
    "lorenz",
    "lorenz_derivative",
    "lorenz_rk4_step",
]

LOGISTIC_LYAPUNOV_R39 = 0.49
"""Largest Lyapunov exponent of the logistic map at r = 3.9, per step (approximate)."""

LORENZ_LYAPUNOV = 0.906
"""Largest Lyapunov exponent of the classic Lorenz system, per unit of time."""


def logistic_step(x: np.ndarray, r: float) -> np.ndarray:
    """One step of the logistic map, elementwise: r·x·(1 − x)."""
    return r * x * (1.0 - x)


def logistic_map(num_trajectories: int, steps: int, r: float = 3.9, burn_in: int = 100,
                 seed: int = 0) -> np.ndarray:
    """Trajectories of the logistic map, [N, steps] float64 in [0, 1].

    Each starts from x ~ U(0.01, 0.99), runs ``burn_in`` steps to settle onto the
    attractor, and then records ``steps`` values (the first is the state after burn-in).

    Args:
        num_trajectories: N >= 1.
        steps: values per trajectory, >= 1.
        r: the growth rate, in [0, 4] (so that [0, 1] maps into itself).
        burn_in: steps discarded before recording, >= 0.
        seed: seeds the local generator.
    """
    _check_int("num_trajectories", num_trajectories, 1)
    _check_int("steps", steps, 1)
    _check_int("burn_in", burn_in, 0)
    if not (isinstance(r, (int, float)) and 0.0 <= r <= 4.0):
        raise ValueError(f"r must be a number in [0, 4] (so that [0, 1] maps into itself); "
                         f"got {r!r}")
    x = np.random.default_rng(seed).uniform(0.01, 0.99, size=num_trajectories)
    for _ in range(burn_in):
        x = logistic_step(x, r)
    out = np.empty((num_trajectories, steps))
    for t in range(steps):
        out[:, t] = x
        x = logistic_step(x, r)
    return out


def lorenz_derivative(state: np.ndarray, sigma: float = 10.0, rho: float = 28.0,
                      beta: float = 8.0 / 3.0) -> np.ndarray:
    """The Lorenz vector field at state [..., 3] (x, y, z) -> [..., 3]."""
    x, y, z = state[..., 0], state[..., 1], state[..., 2]
    return np.stack((sigma * (y - x), x * (rho - z) - y, x * y - beta * z), axis=-1)


def lorenz_rk4_step(state: np.ndarray, dt: float, sigma: float = 10.0, rho: float = 28.0,
                    beta: float = 8.0 / 3.0) -> np.ndarray:
    """One classical Runge–Kutta step of size dt: state [..., 3] -> [..., 3]."""
    def f(s: np.ndarray) -> np.ndarray:
        return lorenz_derivative(s, sigma, rho, beta)

    k1 = f(state)
    k2 = f(state + 0.5 * dt * k1)
    k3 = f(state + 0.5 * dt * k2)
    k4 = f(state + dt * k3)
    return state + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def lorenz(num_trajectories: int, steps: int, dt: float = 0.01, stride: int = 1,
           burn_in: float = 10.0, sigma: float = 10.0, rho: float = 28.0,
           beta: float = 8.0 / 3.0, seed: int = 0) -> np.ndarray:
    """Lorenz trajectories by RK4, [N, steps, 3] float64, one sample every ``stride·dt``.

    Each starts from (x, y, z) ~ N((0, 0, 25), 10²·I) and is integrated for ``burn_in``
    units of time (rounded down to whole steps) before recording, so that it lies on the
    attractor.

    Args:
        num_trajectories: N >= 1.
        steps: samples per trajectory, >= 1.
        dt: the RK4 step, in (0, 0.1] (RK4 on this system is unstable well above 0.1).
        stride: RK4 steps between samples, >= 1.
        burn_in: time integrated before the first sample, >= 0.
        sigma, rho, beta: the system's parameters.
        seed: seeds the local generator.
    """
    _check_int("num_trajectories", num_trajectories, 1)
    _check_int("steps", steps, 1)
    _check_int("stride", stride, 1)
    if not (isinstance(dt, (int, float)) and 0.0 < dt <= 0.1):
        raise ValueError(f"dt must be a number in (0, 0.1]; got {dt!r}")
    if not (isinstance(burn_in, (int, float)) and math.isfinite(burn_in) and burn_in >= 0):
        raise ValueError(f"burn_in must be a finite time >= 0; got {burn_in!r}")
    rng = np.random.default_rng(seed)
    state = rng.normal((0.0, 0.0, 25.0), 10.0, size=(num_trajectories, 3))
    for _ in range(int(burn_in / dt)):
        state = lorenz_rk4_step(state, dt, sigma, rho, beta)
    out = np.empty((num_trajectories, steps, 3))
    for t in range(steps):
        out[:, t] = state
        for _ in range(stride):
            state = lorenz_rk4_step(state, dt, sigma, rho, beta)
    return out


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
