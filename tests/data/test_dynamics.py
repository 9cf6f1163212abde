"""Chaotic trajectory generators: invariants, accuracy of the RK4 integration, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from assoclm.data.dynamics import (
    LOGISTIC_LYAPUNOV_R39,
    logistic_map,
    logistic_step,
    lorenz,
    lorenz_rk4_step,
)


def test_logistic_map_stays_in_the_unit_interval_and_follows_the_map():
    x = logistic_map(50, 400, r=3.9, seed=3)
    assert x.shape == (50, 400) and x.dtype == np.float64
    assert x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x[:, 1:], logistic_step(x[:, :-1], 3.9))
    # on the r = 3.9 attractor, not stuck at a fixed point
    assert x[:, 100:].std() > 0.2


def test_logistic_lyapunov_exponent_matches_the_stated_value():
    # λ = mean over the attractor of log |f'(x)| = log |r (1 − 2x)|
    x = logistic_map(20, 5000, r=3.9, seed=0)
    lam = np.log(np.abs(3.9 * (1 - 2 * x))).mean()
    assert abs(lam - LOGISTIC_LYAPUNOV_R39) < 0.02, f"λ = {lam:.4f}"


def test_logistic_map_is_seeded_and_burn_in_shifts_the_start():
    a, b = logistic_map(4, 10, seed=7), logistic_map(4, 10, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, logistic_map(4, 10, seed=8))
    short = logistic_map(4, 12, burn_in=98, seed=7)
    np.testing.assert_allclose(short[:, 2:], a, rtol=0, atol=1e-12)


def test_lorenz_rk4_step_matches_a_much_finer_integration():
    start = lorenz(3, 1, seed=1)[:, 0]
    coarse = lorenz_rk4_step(start, 0.01)
    fine = start
    for _ in range(100):
        fine = lorenz_rk4_step(fine, 0.0001)
    # RK4's local error is O(dt⁵) times the field's fifth derivative (large here: |ẋ| ~ 100):
    # about 2e-6 on values of order 10, against about 6e-2 for an Euler step
    err = np.abs(coarse - fine).max()
    assert err < 1e-5, f"max |coarse − fine| = {err:.2e}"
    # and halving the step shrinks the error by about 2⁵ (fourth-order method, one step)
    half = lorenz_rk4_step(lorenz_rk4_step(start, 0.005), 0.005)
    ratio = np.abs(coarse - fine).max() / np.abs(half - fine).max()
    assert 12 < ratio < 40, f"error ratio {ratio:.1f}"


def test_lorenz_trajectories_stay_on_the_attractor_and_stride_subsamples():
    x = lorenz(8, 500, dt=0.01, seed=2)
    assert x.shape == (8, 500, 3)
    assert np.abs(x[..., :2]).max() < 30 and 0 < x[..., 2].min() and x[..., 2].max() < 55
    # the two wings are both visited: x changes sign
    assert (x[..., 0] > 5).any() and (x[..., 0] < -5).any()
    strided = lorenz(8, 50, dt=0.01, stride=10, seed=2)
    np.testing.assert_allclose(strided, x[:, ::10], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(x, lorenz(8, 500, dt=0.01, seed=2))


@pytest.mark.parametrize("call, message", [
    (lambda: logistic_map(2, 5, r=4.5), "r must be a number in \\[0, 4\\]"),
    (lambda: logistic_map(0, 5), "num_trajectories must be an int >= 1; got 0"),
    (lambda: lorenz(2, 5, dt=0.5), "dt must be a number in \\(0, 0.1\\]; got 0.5"),
    (lambda: lorenz(2, 5, stride=0), "stride must be an int >= 1; got 0"),
    (lambda: lorenz(2, 5, burn_in=-1.0), "burn_in must be a finite time >= 0"),
])
def test_bad_arguments_fail_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()
