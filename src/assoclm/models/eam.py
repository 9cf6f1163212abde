"""EAM, the Equilibrium Associative Memory: one weight-tied block solved to its fixed point.

For tokens x_1..x_T the model embeds each token, binds it to its position, and solves

    u = bind(E[x_t], r_t)                      (HRR, ops/hrr.py; or E[x_t] + P_t learned)
    z* = f(z*, u),   f(z, u) = h + MLP(RMSNorm₂(h)),   h = u + Attn(RMSNorm₁(z))
    logits = RMSNorm(z*) · E[:V]ᵀ              (tied embeddings)

from z_0 = 0 with ``ops.fixed_point`` (Bai et al. 2019, "Deep Equilibrium Models"). The
input u is injected at every iteration; the residual stream restarts from it, so a fixed
point is a representation that the block reproduces from itself. The attention is
bidirectional ``softmax(β·QKᵀ)V`` with β = 1/√d_head by default: one step of modern-Hopfield
retrieval (Ramsauer et al. 2020), whose energy ``ops.hopfield.hopfield_energy`` of each
query against the keys is reported per solver step as a diagnostic.

Roles r_t are unitary (``ops.hrr.unitary_roles``), so binding is an orthogonal map per
position and the token is exactly recoverable by unbinding; they are fixed, drawn from
``role_seed`` and saved with the weights. ``binding="learned"`` replaces binding by learned
additive positional embeddings (the ablation).

The model is a masked denoiser (MaskGIT): one token id beyond the vocabulary,
``config.mask_id == vocab_size``, marks a masked position; the logits cover the vocabulary
only. It has no streaming state: every position attends to every other, so
``forward(tokens, state=None) -> (logits, None)``, and ``decode`` generates by parallel
iterative unmasking (``ops.maskgit``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.config import Config, check_choice, check_float, check_int
from assoclm.layers.mlp import MLP
from assoclm.ops.fixed_point import BACKWARD_MODES, fixed_point
from assoclm.ops.hopfield import hopfield_energy
from assoclm.ops.hrr import bind, unitary_roles
from assoclm.ops.maskgit import unmask_step

BINDINGS = ("hrr", "learned")


@dataclass
class EAMConfig(Config):
    """EAM model and solver settings.

    vocab_size: real tokens (the mask token is one more, id ``vocab_size``).
    max_len: longest sequence (one role or positional embedding per position).
    beta: the Hopfield inverse temperature; None = 1/√head_dim.
    solver_steps, tol, damping, anderson, grad_tail, backward: ``ops.fixed_point``'s.
    """

    vocab_size: int = 11
    max_len: int = 64
    hidden: int = 96
    num_heads: int = 4
    mlp_multiplier: float = 4.0
    beta: float | None = None
    binding: str = "hrr"
    solver_steps: int = 12
    tol: float = 1e-3
    damping: float = 0.5
    anderson: int = 0
    grad_tail: int = 1
    backward: str = "jfb"
    role_seed: int = 0
    norm_eps: float = 1e-5
    init_std: float = 0.02

    def __post_init__(self) -> None:
        name = type(self).__name__
        check_int(name, "vocab_size", self.vocab_size, 2)
        check_int(name, "max_len", self.max_len, 1)
        check_int(name, "hidden", self.hidden, 2)
        check_int(name, "num_heads", self.num_heads, 1)
        if self.hidden % self.num_heads:
            raise ValueError(f"{name}.hidden ({self.hidden}) must be a multiple of num_heads "
                             f"({self.num_heads})")
        check_float(name, "mlp_multiplier", self.mlp_multiplier, 0.0, 64.0, low_open=True)
        if self.beta is not None:
            check_float(name, "beta", self.beta, 0.0, 1e4, low_open=True)
        check_choice(name, "binding", self.binding, BINDINGS)
        check_int(name, "solver_steps", self.solver_steps, 1)
        check_float(name, "tol", self.tol, 0.0, 1.0)
        check_float(name, "damping", self.damping, 0.0, 1.0, high_open=True)
        check_int(name, "anderson", self.anderson, 0)
        if self.anderson == 1:
            raise ValueError(f"{name}.anderson must be 0 (off) or >= 2; got 1")
        check_int(name, "grad_tail", self.grad_tail, 1)
        if self.grad_tail > self.solver_steps:
            raise ValueError(f"{name}.grad_tail ({self.grad_tail}) must be <= solver_steps "
                             f"({self.solver_steps})")
        check_choice(name, "backward", self.backward, BACKWARD_MODES)
        check_int(name, "role_seed", self.role_seed, 0)
        check_float(name, "norm_eps", self.norm_eps, 0.0, 1.0, low_open=True)
        check_float(name, "init_std", self.init_std, 0.0, 1.0, low_open=True)

    @property
    def head_dim(self) -> int:
        return self.hidden // self.num_heads

    @property
    def mask_id(self) -> int:
        return self.vocab_size

    @property
    def inverse_temperature(self) -> float:
        return self.beta if self.beta is not None else 1.0 / math.sqrt(self.head_dim)


@dataclass
class Solve:
    """Diagnostics of one forward solve: residual ``‖f(z) − z‖ / ‖z‖`` and, when asked for,
    the mean Hopfield energy of the queries against the keys, per solver step."""

    residuals: list[float]
    converged: bool
    energies: list[float] = field(default_factory=list)


class EquilibriumBlock(nn.Module):
    """f(z, u) = h + MLP(RMSNorm₂(h)), h = u + Attn(RMSNorm₁(z)); all shapes [B, T, D]."""

    def __init__(self, config: EAMConfig):
        super().__init__()
        c = config
        self.num_heads, self.head_dim = c.num_heads, c.head_dim
        self.beta = c.inverse_temperature
        self.norm_attn = nn.RMSNorm(c.hidden, eps=c.norm_eps)
        self.qkv = nn.Linear(c.hidden, 3 * c.hidden, bias=False)
        self.out = nn.Linear(c.hidden, c.hidden, bias=False)
        self.norm_mlp = nn.RMSNorm(c.hidden, eps=c.norm_eps)
        self.mlp = MLP(c.hidden, c.mlp_multiplier, "swiglu")

    def _qkv(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = z.shape
        # (B, T, 3·D) -> 3 × (B, H, T, Dh)
        qkv = self.qkv(self.norm_attn(z)).view(B, T, 3, self.num_heads, self.head_dim)
        return qkv.permute(2, 0, 3, 1, 4).unbind(0)

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        B, T, D = z.shape
        q, k, v = self._qkv(z)
        y = F.scaled_dot_product_attention(q, k, v, scale=self.beta)
        h = u + self.out(y.transpose(1, 2).reshape(B, T, D))
        return h + self.mlp(self.norm_mlp(h))

    @torch.no_grad()
    def energy(self, z: torch.Tensor) -> float:
        """Mean Hopfield energy of each query against the keys of the same head."""
        q, k, _ = self._qkv(z)
        return hopfield_energy(q, k, self.beta).mean().item()


class EAMModel(nn.Module):
    """The EAM masked denoiser; see the module docstring.

    forward(tokens [B, T], state=None) -> (logits [B, T, V], None)
    solve(tokens [B, T], ...) -> (logits [B, T, V], Solve)
    decode(tokens [B, T], maskable [B, T], steps) -> tokens [B, T]
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({"masked_denoiser"})

    def __init__(self, config: EAMConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size + 1, c.hidden)
        if c.binding == "hrr":
            roles = unitary_roles(c.max_len, c.hidden, torch.Generator().manual_seed(c.role_seed))
            # a unitary role keeps norms; √D makes each role's entries O(1) like the embedding's
            self.register_buffer("roles", roles * math.sqrt(c.hidden))
            self.positions = None
        else:
            self.roles = None
            self.positions = nn.Embedding(c.max_len, c.hidden)
        self.block = EquilibriumBlock(c)
        self.norm = nn.RMSNorm(c.hidden, eps=c.norm_eps)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def inject(self, tokens: torch.Tensor) -> torch.Tensor:
        """The input u [B, T, D] injected at every solver step."""
        c = self.config
        if tokens.dim() != 2 or tokens.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"tokens must be an integer tensor [B, T]; got {tokens.dtype} "
                             f"{list(tokens.shape)}")
        T = tokens.shape[1]
        if not 1 <= T <= c.max_len:
            raise ValueError(f"sequence length {T} is outside [1, max_len={c.max_len}]")
        if tokens.numel() and (tokens.min() < 0 or tokens.max() > c.mask_id):
            raise ValueError(f"token ids must lie in [0, {c.mask_id}] (vocabulary and the mask "
                             f"id {c.mask_id}); got [{tokens.min().item()}, "
                             f"{tokens.max().item()}]")
        e = self.embed(tokens)
        if self.roles is not None:
            return bind(e, self.roles[:T].to(e.dtype))
        return e + self.positions.weight[:T]

    def solve(self, tokens: torch.Tensor, *, solver_steps: int | None = None,
              energies: bool = False) -> tuple[torch.Tensor, Solve]:
        """Logits [B, T, V] at the fixed point, and the solve's diagnostics.

        solver_steps overrides the config's (test-time depth); energies adds the mean
        Hopfield energy per solver step (one extra attention score pass per step).
        """
        c = self.config
        u = self.inject(tokens)
        steps = c.solver_steps if solver_steps is None else solver_steps
        energy: list[float] = []
        callback = (lambda _, z: energy.append(self.block.energy(z))) if energies else None
        result = fixed_point(
            lambda z: self.block(z, u), torch.zeros_like(u), max_steps=steps, tol=c.tol,
            damping=c.damping, anderson=c.anderson, grad_tail=min(c.grad_tail, steps),
            backward=c.backward, callback=callback,
        )
        logits = F.linear(self.norm(result.z), self.embed.weight[: c.vocab_size])
        return logits, Solve(result.residuals, result.converged, energy)

    def forward(self, tokens: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        if state is not None:
            raise ValueError("EAM has no streaming state (every position sees every other); "
                             "pass state=None")
        logits, _ = self.solve(tokens)
        return logits, None

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, maskable: torch.Tensor, steps: int,
               temperature: float = 0.0, generator: torch.Generator | None = None,
               solver_steps: int | None = None) -> torch.Tensor:
        """MaskGIT decoding: every ``maskable`` position of tokens [B, T] starts masked and
        is filled in ``steps`` parallel rounds; the other positions are kept. -> [B, T].
        solver_steps overrides the config's for every round's solve."""
        if maskable.shape != tokens.shape or maskable.dtype != torch.bool:
            raise ValueError(f"maskable must be a bool tensor shaped like tokens "
                             f"{tuple(tokens.shape)}; got {maskable.dtype} "
                             f"{tuple(maskable.shape)}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"decode steps must be an integer >= 1; got {steps!r}")
        mask_id = self.config.mask_id
        total = maskable.sum(1)
        current = tokens.masked_fill(maskable, mask_id)
        masked = maskable.clone()
        for step in range(1, steps + 1):
            if not masked.any():
                break
            logits, _ = self.solve(current, solver_steps=solver_steps)
            current, masked = unmask_step(current, masked, logits, step, steps, total,
                                          mask_id, temperature, generator)
        return current


__all__ = ["BINDINGS", "EAMConfig", "EAMModel", "EquilibriumBlock", "Solve"]
