"""QuazimotoBlock: a channel mixer made of coupled phase oscillators on concentric rings.

Positronic (:mod:`assoclm.models.positronic`) replaces every transformer MLP by this block.
Per token x [D] (after an RMSNorm), with N = Σ n_r oscillators on R rings:

    θ⁰ = W_θ x                                  initial phases              [N]
    ω  = tanh(W_ω x)                            bounded natural frequencies [N]
    u  = g_{r(i)} · tanh(W_u x)                 external drive, per-ring gain g
    θ  = Euler^{osc_steps}(θ⁰; dt)              of the ring-coupled Kuramoto model:

    dθ_i/dt = ω_i + Σ_s K_{r(i) s} R_s sin(ψ_s − θ_i − α_{r(i)})
                  + c_{r(i)} sin(center_omega · t − θ_i) + u_i

    y = W_2 GELU(W_1 [cos θ, sin θ])            readout, hidden 3·D
    out = softclamp(tanh(gate) · y)             gate initialised so tanh(gate) = 0.9

(R_s e^{iψ_s} is ring s's order parameter; the dynamics and their reductions to classic
Kuramoto and to AKOrN are documented in :mod:`assoclm.ops.kuramoto`.) K [R, R] is initialised
with a strong diagonal and weaker couplings to the neighbouring rings; α (frustration) at 0,
c (centre pull) and g (drive gain) at small positive values. ``softclamp(y) =
bound · erf(√π·y / (2·bound))``: slope 1 at 0, smooth, and |out| < bound (10).

Trait hooks: ``forward`` takes optional ``initial`` (``initial_conditions(norm(x))``, when
the caller computed it already), ``phase_offset`` [..., N] (added to θ⁰),
``extra_drive`` [..., N] (added to u) and ``modulation``, a dict of per-ring, per-token
[..., R] tensors: ``"coupling"`` (row r of K scaled by 1 + m_r), ``"frustration"`` (added to
α_r), ``"center"`` (c_r scaled by 1 + m_r) and ``"drive"`` (g_r scaled by 1 + m_r). With
none given the block is the plain one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.ops.kuramoto import check_ring_sizes, integrate_kuramoto, ring_index

MODULATIONS = ("coupling", "frustration", "center", "drive")


def soft_clamp(x: torch.Tensor, bound: float) -> torch.Tensor:
    """bound · erf(√π·x / (2·bound)): identity near 0 (slope 1), smoothly bounded by ±bound."""
    return bound * torch.erf(x * (math.sqrt(math.pi) / (2 * bound)))


class QuazimotoBlock(nn.Module):
    """x [..., D] -> [..., D] through oscillator dynamics (equations in the module docstring).

    No biases. ``gate_value`` is tanh(gate), the block's output scale.
    """

    def __init__(self, dim: int, ring_sizes: Sequence[int] = (4, 8, 16, 32, 64, 128, 256),
                 osc_steps: int = 4, dt: float = 0.5, center_omega: float = 0.1,
                 expansion: float = 3.0, gate_init: float = 0.9, clamp: float = 10.0,
                 self_coupling: float = 1.0, neighbour_coupling: float = 0.25,
                 center_gain: float = 0.1, drive_gain: float = 0.5, norm_eps: float = 1e-6):
        super().__init__()
        self.ring_sizes = check_ring_sizes(ring_sizes)
        if not 0 < gate_init < 1:
            raise ValueError(f"gate_init is tanh(gate) at init and must be in (0, 1); "
                             f"got {gate_init}")
        R, N = len(self.ring_sizes), sum(self.ring_sizes)
        self.num_oscillators = N
        self.osc_steps, self.dt, self.center_omega, self.clamp = osc_steps, dt, center_omega, clamp
        self.norm = nn.RMSNorm(dim, eps=norm_eps)
        # rows [θ⁰ | ω | u]: one matmul for the three per-oscillator projections
        self.phase_in = nn.Linear(dim, 3 * N, bias=False)
        gains = torch.zeros(R, R)
        gains.diagonal().fill_(self_coupling)
        gains.diagonal(1).fill_(neighbour_coupling)
        gains.diagonal(-1).fill_(neighbour_coupling)
        self.ring_gain = nn.Parameter(gains)
        self.frustration = nn.Parameter(torch.zeros(R))
        self.center_gain = nn.Parameter(torch.full((R,), center_gain))
        self.drive_gain = nn.Parameter(torch.full((R,), drive_gain))
        hidden = int(expansion * dim)
        self.read_in = nn.Linear(2 * N, hidden, bias=False)
        self.read_out = nn.Linear(hidden, dim, bias=False)
        self.gate = nn.Parameter(torch.tensor(math.atanh(gate_init)))
        self.register_buffer("_ring", ring_index(self.ring_sizes), persistent=False)

    @property
    def num_rings(self) -> int:
        return len(self.ring_sizes)

    def initial_conditions(self, x: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [..., D] (already normed) -> θ⁰, ω, tanh(W_u x), each [..., N]."""
        theta, omega, drive = self.phase_in(x).chunk(3, dim=-1)
        return theta, torch.tanh(omega), torch.tanh(drive)

    def phases(self, x: torch.Tensor, phase_offset: torch.Tensor | None = None,
               extra_drive: torch.Tensor | None = None,
               modulation: dict[str, torch.Tensor] | None = None,
               initial: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        """x [..., D] -> the integrated phases θ [..., N] (computed in float32). ``initial``:
        ``initial_conditions(norm(x))`` when the caller has already computed it."""
        if initial is None:
            initial = self.initial_conditions(self.norm(x))
        theta, omega, drive = (t.float() for t in initial)
        if phase_offset is not None:
            theta = theta + phase_offset
        mod = dict(modulation or {})
        unknown = set(mod) - set(MODULATIONS)
        if unknown:
            raise ValueError(f"unknown modulation {sorted(unknown)}; allowed: {MODULATIONS}")
        coupling, frustration = self.ring_gain.float(), self.frustration.float()
        center, drive_gain = self.center_gain.float(), self.drive_gain.float()
        if "coupling" in mod:
            coupling = coupling * (1 + mod["coupling"].float()).unsqueeze(-1)
        if "frustration" in mod:
            frustration = frustration + mod["frustration"].float()
        if "center" in mod:
            center = center * (1 + mod["center"].float())
        if "drive" in mod:
            drive_gain = drive_gain * (1 + mod["drive"].float())
        drive = drive * drive_gain[..., self._ring]
        if extra_drive is not None:
            drive = drive + extra_drive
        return integrate_kuramoto(theta, omega, coupling, self.ring_sizes, self.osc_steps,
                                  self.dt, frustration, self.center_omega, center, drive)

    def readout(self, theta: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """θ [..., N] -> the gated, clamped output [..., D]."""
        features = torch.cat((theta.cos(), theta.sin()), dim=-1).to(dtype)
        y = self.read_out(F.gelu(self.read_in(features)))
        return soft_clamp(torch.tanh(self.gate) * y, self.clamp)

    def forward(self, x: torch.Tensor, phase_offset: torch.Tensor | None = None,
                extra_drive: torch.Tensor | None = None,
                modulation: dict[str, torch.Tensor] | None = None,
                initial: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
        return self.readout(self.phases(x, phase_offset, extra_drive, modulation, initial),
                            x.dtype)

    @property
    def gate_value(self) -> float:
        return float(torch.tanh(self.gate.detach()))
