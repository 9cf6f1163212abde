"""Positronic's post-stack traits: HRM refinement, a shared-plus-routed MoE, a JEPA loss.

They act on the residual stream x [B, T, D] after the last PositronicBlock, before the final
RMSNorm, in this order (each only when named in ``PositronicConfig.traits``):

    x = x + HRM(x)                                  per-token latent refinement
    x = x + Shared(RMSNorm(x)) + MoE(RMSNorm(x))    shared SwiGLU + top-k routed SwiGLUs

and JEPA adds a training-time loss on the final hidden h = RMSNorm(x) that never changes
the logits. HRM and MoE end in zero-initialised matrices, so at initialisation the model
computes exactly what it computes without them; the first backward pass gives those
matrices a non-zero gradient, and from the first optimiser step on every parameter of the
traits trains. All three are per-token given the trunk: they carry no state across time,
so streaming (chunked prefill, token-by-token decoding) is unchanged.

**HRM refinement** (after the Hierarchical Reasoning Model, Wang et al. 2025,
arXiv 2506.21734: a recurrent latent repeatedly updated from the input until it settles).
Per token, with u = RMSNorm(x) and a learned start state z₀ [D]:

    z_s = z_{s−1} + σ(g_s) ⊙ W₂ silu(W₁ [RMSNorm(z_{s−1}); u])      s = 1 .. S
    HRM(x) = W_out (z_S − z₀)                                         W_out = 0 at init

with S = ``hrm_steps``, per-step gate logits g_s [D] (init 0) and one weight-tied update
(W₁, W₂) for all steps, as HRM's modules are weight-tied across their iterations. Only the
refinement delta z_S − z₀ reaches the stream. Differences from HRM, kept on purpose for a
cheap add-on: one level instead of HRM's fast/slow pair, a fixed small S, and exact
backpropagation through the S steps instead of HRM's one-step gradient approximation.

**MoE** (DeepSeekMoE, Dai et al. 2024, arXiv 2401.06066: an always-on shared expert beside
routed experts): a SwiGLU :class:`~assoclm.layers.mlp.MLP` plus the top-``moe_top_k`` of
``moe_experts`` SwiGLUs of :class:`~assoclm.layers.moe.MoE`, on one pre-normed residual
branch. Every down-projection is zero-initialised. The routed layer's Switch load-balancing
loss (Fedus et al. 2021) is returned as ``aux["moe"]`` and weighted by ``moe_weight``.

**JEPA** (joint-embedding predictive architecture: LeCun 2022, "A Path Towards Autonomous
Machine Intelligence"; I-JEPA, Assran et al. 2023, arXiv 2301.08243): a predictor P (a SiLU
MLP) maps the representation h_t to a prediction of the representation k = ``jepa_ahead``
tokens later, which is a stop-gradient target (the model itself, as in SimSiam, Chen & He
2021, arXiv 2011.10566, instead of I-JEPA's EMA target encoder):

    L_jepa = Σ_t m_t m_{t+k} (1 − cos(P(h_t), sg(h_{t+k}))) / Σ_t m_t m_{t+k},   t + k < T

weighted by ``jepa_weight``. The gradient reaches the trunk only through h_t.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.layers.mlp import MLP
from assoclm.layers.moe import MoE
from assoclm.models.positronic.config import POST_STACK_TRAITS, PositronicConfig

# hidden width of the shared and of each routed SwiGLU, as a multiple of hidden_size (before
# SwiGLU's two-thirds rule): the shared expert plus the top-2 routed ones cost the active
# compute of about 1.5 standard 4x MLPs per token
MOE_MULTIPLIER = 2.0
# hidden width of the JEPA predictor, as a multiple of hidden_size
JEPA_MULTIPLIER = 2.0


class HRMRefinement(nn.Module):
    """x [B, T, D] -> HRM(x) [B, T, D]: the refinement delta of a per-token latent
    reconciled with x over ``steps`` gated, weight-tied updates (module docstring)."""

    def __init__(self, dim: int, steps: int, norm_eps: float = 1e-6):
        super().__init__()
        if steps < 1:
            raise ValueError(f"HRM refinement needs steps >= 1; got {steps}")
        self.steps = steps
        self.z0 = nn.Parameter(torch.zeros(dim))
        self.gate = nn.Parameter(torch.zeros(steps, dim))
        self.norm_x = nn.RMSNorm(dim, eps=norm_eps)
        self.norm_z = nn.RMSNorm(dim, eps=norm_eps)
        self.inp = nn.Linear(2 * dim, dim, bias=False)
        self.upd = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """z₀ ~ N(0, 1), gates at σ(0) = ½, and W_out = 0 (a no-op at init)."""
        # unit RMS: RMSNorm's Jacobian scales as 1/rms(z), so a tiny z₀ would get a huge
        # gradient (1/√eps at z₀ = 0)
        nn.init.normal_(self.z0)
        nn.init.zeros_(self.gate)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.norm_x(x)
        z0 = self.z0.to(x.dtype).expand_as(x)
        z = z0
        for s in range(self.steps):
            f = self.upd(F.silu(self.inp(torch.cat([self.norm_z(z), u], dim=-1))))
            z = z + torch.sigmoid(self.gate[s]).to(x.dtype) * f
        return self.out(z - z0)

    def gates(self) -> list[nn.Parameter]:
        return [self.out.weight]


class SharedMoE(nn.Module):
    """x [B, T, D] -> Shared(RMSNorm(x)) + MoE(RMSNorm(x)) [B, T, D]; after a call
    ``aux_loss`` is the routed layer's load-balancing loss (a scalar tensor)."""

    def __init__(self, dim: int, num_experts: int, top_k: int, norm_eps: float = 1e-6,
                 multiplier: float = MOE_MULTIPLIER):
        super().__init__()
        self.norm = nn.RMSNorm(dim, eps=norm_eps)
        self.shared = MLP(dim, multiplier, "swiglu")
        self.routed = MoE(dim, multiplier, num_experts, top_k)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zero every down-projection: the branch adds exactly 0 at init."""
        for p in self.gates():
            nn.init.zeros_(p)

    @property
    def aux_loss(self) -> torch.Tensor | None:
        return self.routed.aux_loss

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm(x)
        return self.shared(n) + self.routed(n)

    def gates(self) -> list[nn.Parameter]:
        return [self.shared.down.weight] + [e.down.weight for e in self.routed.experts]


class JEPAPredictor(nn.Module):
    """The JEPA loss of the module docstring: h [B, T, D], mask [B, T] -> scalar (float32)."""

    def __init__(self, dim: int, ahead: int, multiplier: float = JEPA_MULTIPLIER):
        super().__init__()
        if ahead < 1:
            raise ValueError(f"JEPA needs ahead >= 1; got {ahead}")
        self.ahead = ahead
        self.predictor = MLP(dim, multiplier, "silu")

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if h.dim() != 3 or mask.shape != h.shape[:2]:
            raise ValueError(f"JEPA needs h [B, T, D] and mask [B, T]; got "
                             f"{list(h.shape)} and {list(mask.shape)}")
        k, T = self.ahead, h.shape[1]
        if T <= k:
            return h.new_zeros((), dtype=torch.float32)
        pred = self.predictor(h[:, :T - k]).float()
        # stop-gradient target: the trunk learns only through the predictor's input
        target = h[:, k:].detach().float()
        m = mask[:, :T - k].float() * mask[:, k:].float()
        loss = 1 - F.cosine_similarity(pred, target, dim=-1, eps=1e-6)
        return (loss * m).sum() / m.sum().clamp(min=1)


class PostStackTraits(nn.Module):
    """The enabled post-stack traits of a :class:`PositronicConfig` (module docstring).

    forward(x [B, T, D]) -> (x with the traits' contributions [B, T, D], aux: named scalar
    tensors, here ``"moe"`` when the MoE is on); ``aux_loss(h, aux, mask, parts)`` -> the
    weighted auxiliary loss; ``component_gates()`` -> per logit-changing trait, the
    zero-initialised parameters whose zeroing removes exactly its contribution.
    """

    def __init__(self, config: PositronicConfig):
        super().__init__()
        c = config
        if not any(c.has(t) for t in POST_STACK_TRAITS):
            raise ValueError(f"PostStackTraits needs at least one of {POST_STACK_TRAITS} in "
                             f"config.traits; got {list(c.traits)}")
        self.config = c
        self.hrm = HRMRefinement(c.hidden_size, c.hrm_steps, c.norm_eps) if c.has("hrm") \
            else None
        self.moe = SharedMoE(c.hidden_size, c.moe_experts, c.moe_top_k, c.norm_eps) \
            if c.has("moe") else None
        self.jepa = JEPAPredictor(c.hidden_size, c.jepa_ahead) if c.has("jepa") else None

    def reset_parameters(self) -> None:
        """Called after the model's normal(0, init_std) init: make HRM and MoE no-ops."""
        if self.hrm is not None:
            self.hrm.reset_parameters()
        if self.moe is not None:
            self.moe.reset_parameters()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        aux: dict[str, torch.Tensor] = {}
        if self.hrm is not None:
            x = x + self.hrm(x)
        if self.moe is not None:
            x = x + self.moe(x)
            aux["moe"] = self.moe.aux_loss
        return x, aux

    def aux_loss(self, h: torch.Tensor, aux: dict[str, torch.Tensor], mask: torch.Tensor,
                 parts: dict[str, float]) -> torch.Tensor:
        """h [B, T, D] the final normed hidden, aux from :meth:`forward`, mask [B, T] loss
        weights -> moe_weight · balance + jepa_weight · L_jepa (a float32 scalar; 0 when
        neither is on). Writes each unweighted loss into ``parts``."""
        c = self.config
        total = h.new_zeros((), dtype=torch.float32)
        if "moe" in aux:
            balance = aux["moe"].float()
            total = total + c.moe_weight * balance
            parts["moe"] = float(balance.detach())
        if self.jepa is not None:
            jepa = self.jepa(h, mask)
            total = total + c.jepa_weight * jepa
            parts["jepa"] = float(jepa.detach())
        return total

    def component_gates(self) -> dict[str, list[nn.Parameter]]:
        """{"hrm": [W_out], "moe": [the down-projections]} for the enabled ones: zeroing a
        trait's list gives the logits of the model without that trait. JEPA is not listed
        (it never changes the logits)."""
        gates: dict[str, list[nn.Parameter]] = {}
        if self.hrm is not None:
            gates["hrm"] = self.hrm.gates()
        if self.moe is not None:
            gates["moe"] = self.moe.gates()
        return gates


__all__ = ["HRMRefinement", "JEPAPredictor", "PostStackTraits", "SharedMoE"]
