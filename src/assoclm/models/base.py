"""What every token-level LM here shares: tied logits, weight init, input and state checks.

A subclass sets ``config`` (with ``init_std``), ``embed``, ``blocks`` and ``norm``, and
defines ``init_state(batch_size, device=None)`` returning a state with ``num_layers`` and
``batch_size``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn


class TokenLM(nn.Module):
    # What it offers beyond nn.Module (assoclm.models.protocols.CAPABILITIES): every token
    # LM is a causal LM; a subclass with more says so.
    capabilities: ClassVar[frozenset[str]] = frozenset({"causal_lm"})
    config: Any
    embed: nn.Embedding
    blocks: nn.ModuleList
    norm: nn.Module

    def init_state(self, batch_size: int, device=None) -> Any:
        raise NotImplementedError

    def _init_weights(self, module: nn.Module) -> None:
        """Normal(0, init_std) for linear and embedding weights; zero biases."""
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        # tied input/output embeddings
        return F.linear(self.norm(x), self.embed.weight)

    def _check(self, tokens: torch.Tensor, state: Any, time_axis: bool) -> Any:
        """Validate token ids ([B, T] or [B]) and the state; a fresh state when None."""
        want = 2 if time_axis else 1
        if tokens.dim() != want or tokens.dtype not in (torch.int32, torch.int64):
            layout = "[B, T]" if time_axis else "[B]"
            raise ValueError(
                f"tokens must be an integer tensor of shape {layout}; "
                f"got {tokens.dtype} {list(tokens.shape)}"
            )
        if state is None:
            return self.init_state(tokens.shape[0], tokens.device)
        if state.num_layers != len(self.blocks) or state.batch_size != tokens.shape[0]:
            raise ValueError(
                f"state has {state.num_layers} layers and batch {state.batch_size}; "
                f"this model has {len(self.blocks)} layers and the tokens batch "
                f"{tokens.shape[0]}"
            )
        return state
