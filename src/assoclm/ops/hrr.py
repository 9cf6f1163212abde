"""Holographic reduced representations (Plate 1995, "Holographic Reduced Representations",
IEEE Trans. Neural Networks 6(3)).

A filler vector is bound to a role vector by circular convolution and recovered by circular
correlation with the same role. Both act on the last axis and go through the real FFT:

    bind(a, b)   = IFFT(FFT(a) · FFT(b))          (a ⊛ b)[n] = Σ_m a[m] b[(n − m) mod d]
    unbind(c, b) = IFFT(FFT(c) · conj(FFT(b)))    (c ⋆ b)[n] = Σ_m c[(n + m) mod d] b[m]

Unbinding is exact when the role is *unitary*: every Fourier coefficient of b has modulus 1,
so ``conj(FFT(b))·FFT(b) = 1``; binding with a unitary role is then an orthogonal map that
keeps norms. With random Gaussian roles unbinding is only approximate (cosine well below 1).
"""

from __future__ import annotations

import math

import torch


def _check_pair(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    if not (a.is_floating_point() and b.is_floating_point()):
        raise ValueError(f"{names} must be floating-point tensors; got {a.dtype} and {b.dtype}")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"{names} must share the last (vector) axis; got {a.shape[-1]} and "
                         f"{b.shape[-1]}")


def bind(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Circular convolution along the last axis: a [..., d], b [..., d] (broadcast) -> [..., d].

    Computed in float32 at least (the FFT has no bfloat16 kernel), returned in a's dtype.
    """
    _check_pair(a, b, "bind(a, b): a and b")
    d = a.shape[-1]
    wide = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    spec = torch.fft.rfft(a.to(wide), dim=-1) * torch.fft.rfft(b.to(wide), dim=-1)
    return torch.fft.irfft(spec, n=d, dim=-1).to(a.dtype)


def unbind(c: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Circular correlation of c with the role b along the last axis: the filler bound to b.
    c [..., d], b [..., d] (broadcast) -> [..., d]."""
    _check_pair(c, b, "unbind(c, b): c and b")
    d = c.shape[-1]
    wide = torch.promote_types(torch.promote_types(c.dtype, b.dtype), torch.float32)
    spec = torch.fft.rfft(c.to(wide), dim=-1) * torch.fft.rfft(b.to(wide), dim=-1).conj()
    return torch.fft.irfft(spec, n=d, dim=-1).to(c.dtype)


def unitary_roles(num: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``num`` random unitary role vectors of length ``dim`` -> [num, dim] float32.

    Each has Fourier coefficients exp(iφ_k) with uniform random phases; the zero-frequency
    coefficient (and the Nyquist one when dim is even) must be real, so it is ±1. By
    Parseval such a vector has unit norm, and binding with it keeps norms.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be an integer >= 1; got {num!r}")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2; got {dim!r}")
    freqs = dim // 2 + 1
    phases = 2 * math.pi * torch.rand(num, freqs, generator=generator)
    real_bins = [0] + ([dim // 2] if dim % 2 == 0 else [])
    signs = torch.randint(0, 2, (num, len(real_bins)), generator=generator)
    phases[:, real_bins] = math.pi * signs.float()
    spectrum = torch.polar(torch.ones_like(phases), phases)
    return torch.fft.irfft(spectrum, n=dim, dim=-1)


def circular_convolution_naive(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The reference for ``bind``: the defining double sum, in float64. a, b [..., d]."""
    _check_pair(a, b, "circular_convolution_naive(a, b): a and b")
    d = a.shape[-1]
    a64, b64 = torch.broadcast_tensors(a.double(), b.double())
    out = torch.zeros_like(a64)
    for n in range(d):
        for m in range(d):
            out[..., n] += a64[..., m] * b64[..., (n - m) % d]
    return out


__all__ = ["bind", "circular_convolution_naive", "unbind", "unitary_roles"]
