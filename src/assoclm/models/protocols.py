"""The written contracts every model and every state keeps (docs/ARCHITECTURE.md, "Contracts").

A **state** is what a model keeps of the context between calls: per-layer memory matrices
(:class:`~assoclm.models.state.MemoryState`), a KV cache
(:class:`~assoclm.layers.kv_cache.KVCacheState`) or a KV cache with trait memories
(``PositronicState``). It is immutable and serialisable, so a server can hold, save and
restore one state per session.

A **causal language model** maps token ids and a state to next-token logits and the new
state, for a whole sequence (``forward``) or one token (``step``); feeding a sequence in any
pieces with the state carried gives the same logits as feeding it at once.

What a model can do beyond the contract is declared in the registry
(:class:`assoclm.models.ModelSpec`, field ``capabilities``), never probed with ``hasattr``:

- ``"causal_lm"``: keeps :class:`CausalLM` (the trainer, generation and the duplex session
  need it).
- ``"training_loss"``: has auxiliary objectives and computes its own loss,
  :class:`OwnsTrainingLoss`.
- ``"speculative"``: drafts tokens with extra heads and decodes greedily with them,
  :class:`SpeculativeDecoder` (whether a given config has heads is the config's business).
- ``"masked_denoiser"``: a bidirectional model that fills masked positions
  (:class:`MaskedDenoiser`, EAM); it has no streaming state.

``tests/models/test_contracts.py`` checks every registered model against the protocols of
the capabilities it declares, and that it declares every capability it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

CAPABILITIES = ("causal_lm", "training_loss", "speculative", "masked_denoiser")


@runtime_checkable
class State(Protocol):
    """An immutable, serialisable model state; every method returns a new state."""

    @property
    def batch_size(self) -> int:
        """B, the number of independent sequences (lanes)."""
        ...

    @property
    def num_layers(self) -> int:
        """The layers it holds a memory or cache for."""
        ...

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors it holds."""
        ...

    def detach(self) -> State:
        """The same values, cut from the autograd graph (truncated BPTT)."""
        ...

    def reset(self, mask: torch.Tensor) -> State:
        """Lanes where ``mask`` [B] (bool) is true start afresh; the others are kept."""
        ...

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> State:
        """A copy on ``device`` (floating tensors in ``dtype`` when given)."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat name -> tensor mapping, ready for safetensors."""
        ...

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor]) -> State:
        """The state :meth:`state_dict` describes; ValueError on keys or shapes that do not
        fit."""
        ...


@runtime_checkable
class CausalLM(Protocol):
    """Token ids in, next-token logits out, with the context carried in a :class:`State`."""

    config: Any

    def forward(self, tokens: torch.Tensor, state: State | None = None
                ) -> tuple[torch.Tensor, State]:
        """tokens [B, T] (None: a fresh state) -> (logits [B, T, vocab], state)."""
        ...

    def step(self, token: torch.Tensor, state: State | None = None
             ) -> tuple[torch.Tensor, State]:
        """token [B] -> (logits [B, vocab], state): exactly ``forward`` on one token."""
        ...

    def init_state(self, batch_size: int, device: Any = None) -> State:
        """The empty state of ``batch_size`` lanes."""
        ...


@runtime_checkable
class OwnsTrainingLoss(Protocol):
    """A model with auxiliary objectives (z-loss, draft heads, ...) computes its own loss."""

    def training_loss(self, inputs: torch.Tensor, targets: torch.Tensor,
                      loss_mask: torch.Tensor, state: State | None
                      ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, State]:
        """(loss, {"ce": next-token cross-entropy, ...parts}, logits, state); ``inputs``,
        ``targets`` and ``loss_mask`` are [B, T]."""
        ...


@runtime_checkable
class SpeculativeDecoder(Protocol):
    """Greedy decoding that drafts several tokens per forward call with the model's own
    heads and keeps the ones the model agrees with."""

    def speculative_generate(self, prompt_ids: Sequence[int], max_new_tokens: int,
                             stop_ids: Sequence[int] = (), banned_ids: Sequence[int] = ()
                             ) -> tuple[list[int], dict[str, int]]:
        """(new ids, {"drafted", "accepted", "forward_calls"})."""
        ...


@runtime_checkable
class MaskedDenoiser(Protocol):
    """A bidirectional model over a fixed-length sequence with a mask id; no stream state."""

    config: Any

    def forward(self, tokens: torch.Tensor, state: None = None) -> tuple[torch.Tensor, None]:
        """tokens [B, T] (mask id where unknown) -> (logits [B, T, vocab], None)."""
        ...

    def decode(self, tokens: torch.Tensor, maskable: torch.Tensor, steps: int,
               **kwargs: Any) -> torch.Tensor:
        """Fill the masked, maskable positions in ``steps`` parallel rounds."""
        ...
