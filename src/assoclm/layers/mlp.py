"""Channel mixers: gated (SwiGLU) or plain SiLU MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MLP_KINDS = ("swiglu", "silu")


def swiglu_hidden(dim: int, multiplier: float) -> int:
    """Hidden width of a SwiGLU with the parameter count of a plain MLP of `multiplier`·dim:
    two thirds of it (three matrices instead of two), rounded up to a multiple of 64."""
    hidden = int(2 * multiplier * dim / 3)
    return 64 * ((hidden + 63) // 64)


class MLP(nn.Module):
    """x [..., D] -> [..., D]. "swiglu": W_down(silu(W_gate x) ⊙ W_up x) (Shazeer 2020);
    "silu": W_down(silu(W_up x))."""

    def __init__(self, dim: int, multiplier: float = 4.0, kind: str = "swiglu"):
        super().__init__()
        if kind not in MLP_KINDS:
            raise ValueError(f"MLP kind must be one of {MLP_KINDS}; got {kind!r}")
        self.kind = kind
        hidden = swiglu_hidden(dim, multiplier) if kind == "swiglu" else int(multiplier * dim)
        # swiglu: gate and up projections in one matrix, rows [gate | up] (one matmul)
        self.up = nn.Linear(dim, 2 * hidden if kind == "swiglu" else hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "silu":
            return self.down(F.silu(self.up(x)))
        gate, up = self.up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)
