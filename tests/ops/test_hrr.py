"""HRR binding: the FFT form against the defining sum, exact unbinding with unitary roles."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from assoclm.ops.hrr import bind, circular_convolution_naive, unbind, unitary_roles
from assoclm.testing import assert_rel_close


@pytest.mark.parametrize("d", [2, 7, 16, 33], ids=lambda d: f"d{d}")
def test_bind_is_the_circular_convolution(d):
    g = torch.Generator().manual_seed(d)
    a, b = torch.randn(3, d, generator=g), torch.randn(3, d, generator=g)
    assert_rel_close(bind(a, b), circular_convolution_naive(a, b), 1e-5, "bind")
    assert_rel_close(bind(a, b), bind(b, a), 1e-5, "commutativity")


@pytest.mark.parametrize("d", [64, 95, 256], ids=lambda d: f"d{d}")
def test_unitary_roles_unbind_exactly(d):
    g = torch.Generator().manual_seed(0)
    roles = unitary_roles(10, d, g)
    spectrum = torch.fft.rfft(roles, dim=-1).abs()
    assert torch.allclose(spectrum, torch.ones_like(spectrum), atol=1e-5)
    filler = torch.randn(10, d, generator=g)
    recovered = unbind(bind(filler, roles), roles)
    cos = F.cosine_similarity(recovered, filler, dim=-1)
    assert cos.min() > 0.99, f"min cosine {cos.min():.4f}"
    assert_rel_close(recovered, filler, 1e-5, "unbind(bind(x, r), r)")
    # binding with a unitary role keeps norms (an orthogonal map)
    assert_rel_close(bind(filler, roles).norm(dim=-1), filler.norm(dim=-1), 1e-5, "norms")


def test_random_gaussian_roles_unbind_only_approximately():
    g = torch.Generator().manual_seed(1)
    d = 256
    roles = torch.randn(20, d, generator=g) / d**0.5
    filler = torch.randn(20, d, generator=g)
    cos = F.cosine_similarity(unbind(bind(filler, roles), roles), filler, dim=-1)
    assert cos.mean() < 0.9, "a non-unitary role should lose information on unbinding"


def test_unbinding_with_the_wrong_role_gives_noise():
    g = torch.Generator().manual_seed(2)
    roles = unitary_roles(2, 512, g)
    filler = torch.randn(512, generator=g)
    wrong = unbind(bind(filler, roles[0]), roles[1])
    assert F.cosine_similarity(wrong, filler, dim=0).abs() < 0.2


def test_bfloat16_inputs_keep_their_dtype():
    a = torch.randn(4, 32).bfloat16()
    r = unitary_roles(1, 32)
    out = bind(a, r)
    assert out.dtype == torch.bfloat16
    assert_rel_close(unbind(out.float(), r), a.float(), 2e-2, "bf16 round trip")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="last"):
        bind(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="floating"):
        unbind(torch.ones(3, 4, dtype=torch.long), torch.randn(4))
    with pytest.raises(ValueError, match="dim"):
        unitary_roles(3, 1)
    with pytest.raises(ValueError, match="num"):
        unitary_roles(0, 8)
