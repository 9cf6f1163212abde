"""Modern Hopfield energy: its form, and that the retrieval update never raises it."""

from __future__ import annotations

import math

import pytest
import torch

from assoclm.ops.hopfield import hopfield_energy, hopfield_retrieve


def test_energy_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    xi, X = torch.randn(3, 5, generator=g), torch.randn(7, 5, generator=g)
    beta = 0.7
    e = hopfield_energy(xi, X, beta)
    for q in range(3):
        want = -math.log(sum(math.exp(beta * float(X[i] @ xi[q])) for i in range(7))) / beta
        want += 0.5 * float(xi[q] @ xi[q])
        assert abs(e[q].item() - want) < 1e-5


@pytest.mark.parametrize("beta", [0.1, 1.0, 8.0])
def test_retrieval_update_does_not_increase_the_energy(beta):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(2, 30, 16, generator=g, dtype=torch.float64)
    xi = torch.randn(2, 10, 16, generator=g, dtype=torch.float64)
    energy = hopfield_energy(xi, X, beta)
    for _ in range(5):
        xi = hopfield_retrieve(xi, X, beta)
        new = hopfield_energy(xi, X, beta)
        assert (new <= energy + 1e-9).all(), (new - energy).max()
        energy = new


def test_large_beta_retrieves_the_nearest_pattern():
    g = torch.Generator().manual_seed(2)
    X = torch.nn.functional.normalize(torch.randn(20, 64, generator=g), dim=-1)
    probe = X[3] + 0.1 * torch.randn(64, generator=g)
    out = hopfield_retrieve(probe[None], X, beta=50.0)[0]
    assert torch.allclose(out, X[3], atol=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="share d"):
        hopfield_energy(torch.randn(2, 3), torch.randn(4, 5), 1.0)
    with pytest.raises(ValueError, match="beta"):
        hopfield_retrieve(torch.randn(2, 3), torch.randn(4, 3), 0.0)
