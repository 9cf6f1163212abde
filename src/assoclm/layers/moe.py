"""A top-k mixture of SwiGLU experts with token-choice routing.

Per token x [D]: router logits l = W_r x [E]; the k largest, l_{e_1} .. l_{e_k}, are
softmaxed among themselves (the weights of the chosen experts sum to 1; as in Mixtral, Jiang
et al. 2024, arXiv 2401.04088), and

    y = Σ_j softmax(l_{e_1..e_k})_j · Expert_{e_j}(x)

where every expert is a SwiGLU :class:`~assoclm.layers.mlp.MLP`. Each expert runs only on the
tokens routed to it (a loop over experts, not over tokens).

Load balancing (Switch Transformer, Fedus et al. 2021, arXiv 2101.03961, eq. 4, with the
dispatch fraction counted over all k choices): with N tokens, f_e the fraction of the N·k
choices that went to expert e and P_e the mean over tokens of softmax(l)_e over all E
experts, ``aux_loss = E · Σ_e f_e · P_e``; it is 1 for a perfectly uniform router and grows
as tokens pile onto few experts. A training loop that wants it adds a multiple of
``aux_loss`` to its loss; it is recomputed by every forward call.
"""

from __future__ import annotations

import torch
from torch import nn

from assoclm.layers.mlp import MLP


class MoE(nn.Module):
    """x [..., D] -> [..., D]: top-k mixture of ``num_experts`` SwiGLU experts.

    After a call, ``aux_loss`` (a scalar tensor, in the autograd graph) is that call's
    load-balancing loss and ``last_counts`` [E] how many tokens each expert received.
    """

    def __init__(self, dim: int, multiplier: float = 4.0, num_experts: int = 4, top_k: int = 2):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1; got {num_experts}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be in [1, num_experts={num_experts}]; got {top_k}")
        self.num_experts = num_experts
        self.top_k = top_k
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.experts = nn.ModuleList(MLP(dim, multiplier, "swiglu") for _ in range(num_experts))
        self.aux_loss: torch.Tensor | None = None
        self.last_counts: torch.Tensor | None = None

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [N, D] -> (weights [N, k], experts [N, k] long, router probabilities [N, E])."""
        logits = self.router(x).float()
        top, experts = logits.topk(self.top_k, dim=-1)
        return top.softmax(-1), experts, logits.softmax(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        if flat.shape[0] == 0:
            raise ValueError(f"MoE needs at least one token; got input of shape {list(shape)}")
        weights, experts, probs = self.route(flat)
        out = torch.zeros_like(flat)
        counts = torch.bincount(experts.flatten(), minlength=self.num_experts)
        for e, expert in enumerate(self.experts):
            # the (token, slot) pairs that chose expert e; a token picks an expert at most once
            token, slot = (experts == e).nonzero(as_tuple=True)
            if token.numel() == 0:
                continue
            y = expert(flat[token]) * weights[token, slot, None].to(flat.dtype)
            out = out.index_add(0, token, y)
        fraction = counts.to(probs.dtype) / experts.numel()
        self.aux_loss = self.num_experts * (fraction * probs.mean(0)).sum()
        self.last_counts = counts
        return out.view(shape)


__all__ = ["MoE"]
