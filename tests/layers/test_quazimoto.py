"""QuazimotoBlock: the documented computation, the soft clamp, the trait hooks and
gradients to every parameter."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from assoclm.layers.quazimoto import QuazimotoBlock, soft_clamp
from assoclm.ops.kuramoto import integrate_kuramoto
from assoclm.testing import assert_rel_close


def test_quazimoto_block_is_the_documented_computation():
    torch.manual_seed(0)
    block = QuazimotoBlock(24, ring_sizes=(4, 8), osc_steps=3, dt=0.5, center_omega=0.2)
    for p in block.parameters():
        if p.dim() == 2 and p.shape != (2, 2):
            torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 5, 24)
    with torch.no_grad():
        y = block(x)
        h = block.norm(x)
        w_theta, w_omega, w_u = block.phase_in.weight.chunk(3, dim=0)
        ring = torch.tensor([0] * 4 + [1] * 8)
        theta = integrate_kuramoto(h @ w_theta.T, torch.tanh(h @ w_omega.T), block.ring_gain,
                                   (4, 8), 3, 0.5, block.frustration, 0.2, block.center_gain,
                                   torch.tanh(h @ w_u.T) * block.drive_gain[ring])
        feats = torch.cat((theta.cos(), theta.sin()), -1)
        ref = block.read_out(F.gelu(block.read_in(feats))) * 0.9
        ref = 10 * torch.erf(ref * math.sqrt(math.pi) / 20)
    assert_rel_close(y, ref, 1e-5, "QuazimotoBlock")
    assert block.gate_value == pytest.approx(0.9)
    # init: strong diagonal, weaker neighbouring rings, no frustration
    assert block.ring_gain[0, 0] > block.ring_gain[0, 1] > 0 and block.frustration.abs().sum() == 0


def test_soft_clamp_is_identity_near_zero_and_bounded():
    x = torch.tensor([1e-4, -1e-3, 3.0, 50.0, -1e4])
    y = soft_clamp(x, 10.0)
    assert_rel_close(y[:2], x[:2], 1e-6, "slope 1 at 0")
    assert y.abs().max() <= 10.0 and y[3] > 9.5 and y[2] < 3.0


def test_quazimoto_modulation_hooks():
    torch.manual_seed(0)
    block = QuazimotoBlock(16, ring_sizes=(4, 8))
    x = torch.randn(2, 3, 16)
    zeros = {k: torch.zeros(2, 3, 2) for k in ("coupling", "frustration", "center", "drive")}
    with torch.no_grad():
        plain = block(x)
        assert torch.equal(block(x, modulation=zeros), plain)
        assert torch.equal(block(x, phase_offset=torch.zeros(2, 3, 12),
                                 extra_drive=torch.zeros(2, 3, 12)), plain)
        for key in zeros:
            moved = block(x, modulation={key: torch.full((2, 3, 2), 0.5)})
            assert (moved - plain).abs().max() > 1e-4, key
    with pytest.raises(ValueError, match="unknown modulation"):
        block(x, modulation={"speed": torch.zeros(2, 3, 2)})


def test_quazimoto_gradients_reach_every_parameter():
    torch.manual_seed(0)
    block = QuazimotoBlock(16, ring_sizes=(4, 8))
    block(torch.randn(3, 16)).square().sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
