"""Positronic: a transformer whose every MLP is a QuazimotoBlock of Kuramoto oscillators.

Built from the model card's description (the original is a 144M-parameter model); any size.
Per layer:

    x = x + Attention(RMSNorm(x))       GQA, partial RoPE, QK-norm, MLA-style low-rank q/out
    x = x + QuazimotoBlock(x)           coupled phase oscillators on concentric rings

then an optional trait stack (HRM refinement, a routed MoE; both no-ops at initialisation),
a final RMSNorm and the LM head tied to the embedding with a learned logit scale:
``logits = s · RMSNorm(x) Eᵀ``. No biases anywhere.

Training loss (:meth:`PositronicLM.training_loss`): next-token cross entropy, plus the
z-loss ``z_loss · mean(logsumexp(logits)²)`` (PaLM, Chowdhery et al. 2022) that keeps the
softmax normaliser near 1, plus, with ``mtp_heads = k > 0``, the multi-token-prediction loss
of k draft heads (head j predicts the token j + 1 places after the next one), plus the
auxiliary losses of the enabled traits.

Draft heads and self-speculative decoding (Medusa, Cai et al. 2024, arXiv 2401.10774; the
main head is the verifier, as in Stern et al. 2018 "Blockwise Parallel Decoding"): head j is a
residual SiLU block ``h + W_j silu(h)`` on the final hidden state, read through the same tied
LM head. :meth:`PositronicLM.speculative_generate` drafts k tokens from the heads, feeds the
main head's next token and the k drafts through the KV cache in one forward, keeps the longest
prefix of drafts the main head agrees with (plus the main head's own next token), and rewinds
the cache over the rejected drafts. The output is the greedy output.

State: :class:`~assoclm.models.positronic.state.PositronicState`, the KV cache plus the
named per-lane tensors of stateful traits (``extras``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.layers.attention import LowRankAttention
from assoclm.layers.kv_cache import KVCacheState
from assoclm.layers.quazimoto import QuazimotoBlock
from assoclm.models.base import TokenLM
from assoclm.models.positronic.config import POST_STACK_TRAITS, RING_TRAITS, PositronicConfig
from assoclm.models.positronic.post_traits import PostStackTraits
from assoclm.models.positronic.ring_traits import RingTraits
from assoclm.models.positronic.state import PositronicState


class DraftHead(nn.Module):
    """h [..., D] -> h + W silu(h): one Medusa-style residual block (W zero-initialised, so
    at init every draft head predicts what the main head predicts)."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.proj(F.silu(h))


class PositronicBlock(nn.Module):
    """x = x + Attn(RMSNorm(x)); x = x + QuazimotoBlock(x) (with the layer's ring traits)."""

    def __init__(self, config: PositronicConfig, layer: int):
        super().__init__()
        c = config
        self.norm_attn = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.attn = LowRankAttention(c.hidden_size, c.num_heads, c.max_context, c.rope_base,
                                     c.num_kv_heads, qk_norm=True, norm_eps=c.norm_eps,
                                     rope_dim=c.rope_dim, rank=c.attn_rank)
        self.osc = QuazimotoBlock(c.hidden_size, c.ring_sizes, c.osc_steps, c.osc_dt,
                                  c.center_omega, c.osc_expansion, c.osc_gate_init,
                                  c.osc_clamp, norm_eps=c.norm_eps)
        self.ring_traits = None
        if any(c.has(t) for t in RING_TRAITS):
            self.ring_traits = RingTraits(c, layer, self.osc)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, cache, extras: dict,
                rope: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, Any, dict]:
        """x [B, T, D], tokens [B, T] -> (x, cache, this layer's new trait state)."""
        first_position = cache.tokens_seen
        y, cache = self.attn(self.norm_attn(x), cache, rope)
        x = x + y
        hooks: dict[str, Any] = {}
        if self.ring_traits is not None:
            # the normed input and the initial conditions serve the traits and the block
            h = self.osc.norm(x)
            initial = self.osc.initial_conditions(h)
            hooks, extras = self.ring_traits(h, initial[0], tokens, first_position, extras)
            hooks["initial"] = initial
        return x + self.osc(x, **hooks), cache, extras


class PositronicLM(TokenLM):
    """Token ids -> next-token logits, with an explicit :class:`PositronicState`.

    forward(tokens [B, T], state=None) -> (logits [B, T, vocab], state)
    step(token [B], state) -> (logits [B, vocab], state)
    training_loss(inputs, targets, loss_mask, state) -> (loss, metrics, logits, state)
    speculative_generate(prompt_ids, max_new_tokens, ...) -> (new ids, stats)
    """

    capabilities: ClassVar[frozenset[str]] = frozenset(
        {"causal_lm", "training_loss", "speculative"})

    def __init__(self, config: PositronicConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.hidden_size)
        self.blocks = nn.ModuleList(PositronicBlock(c, i) for i in range(c.num_layers))
        self.norm = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.logit_scale = nn.Parameter(torch.ones(()))
        self.draft_heads = nn.ModuleList(DraftHead(c.hidden_size) for _ in range(c.mtp_heads))
        self.post = None
        if any(c.has(t) for t in POST_STACK_TRAITS):
            self.post = PostStackTraits(c)
        self.apply(self._init_weights)
        for head in self.draft_heads:
            nn.init.zeros_(head.proj.weight)
        for block in self.blocks:
            if block.ring_traits is not None:
                block.ring_traits.reset_parameters()
        if self.post is not None:
            self.post.reset_parameters()

    # ------------------------------------------------------------------------------ state
    def init_state(self, batch_size: int, device=None) -> PositronicState:
        c = self.config
        device = self.embed.weight.device if device is None else device
        dtype = self.embed.weight.dtype
        kv = KVCacheState.empty(c.num_layers, batch_size, c.num_kv_heads, c.head_dim, device,
                                dtype)
        extras: dict[str, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            if block.ring_traits is not None:
                for name, t in block.ring_traits.init_state(batch_size, device, dtype).items():
                    extras[f"layers.{i}.{name}"] = t
        return PositronicState(kv, extras)

    def set_memories_frozen(self, frozen: bool) -> None:
        """Stop (True) or resume (False) the test-time writes of the traits' memories (the
        specialists' stores, the controllers' fast weights); reads go on either way."""
        self.config.freeze_memories = bool(frozen)
        for block in self.blocks:
            if block.ring_traits is not None:
                for module in block.ring_traits.modules():
                    if hasattr(module, "freeze"):
                        module.freeze = bool(frozen)

    # ---------------------------------------------------------------------------- forward
    def hidden(self, tokens: torch.Tensor, state: PositronicState
               ) -> tuple[torch.Tensor, PositronicState, dict[str, torch.Tensor]]:
        """tokens [B, T] -> (final hidden h = RMSNorm(x) [B, T, D], new state, aux losses)."""
        x = self.embed(tokens)
        rope = self.blocks[0].attn.rotary(state.tokens_seen, tokens.shape[1], x.device)
        caches, extras = [], {}
        for i, (block, cache) in enumerate(zip(self.blocks, state.kv.layers)):
            prefix = f"layers.{i}."
            mine = {k[len(prefix):]: t for k, t in state.extras.items() if k.startswith(prefix)}
            x, cache, mine = block(x, tokens, cache, mine, rope)
            caches.append(cache)
            extras.update({prefix + k: t for k, t in mine.items()})
        aux: dict[str, torch.Tensor] = {}
        if self.post is not None:
            x, aux = self.post(x)
        return self.norm(x), PositronicState(KVCacheState(tuple(caches)), extras), aux

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Final hidden [..., D] -> logits [..., vocab] (tied embedding, learned scale)."""
        return self.logit_scale * F.linear(h, self.embed.weight)

    def draft_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., D] -> [k, ..., vocab]: draft head j predicts the token j + 2 places ahead."""
        return torch.stack([self.head(head(h)) for head in self.draft_heads])

    def forward(self, tokens: torch.Tensor, state: PositronicState | None = None
                ) -> tuple[torch.Tensor, PositronicState]:
        state = self._check(tokens, state, time_axis=True)
        h, state, _ = self.hidden(tokens, state)
        return self.head(h), state

    def step(self, token: torch.Tensor, state: PositronicState | None = None
             ) -> tuple[torch.Tensor, PositronicState]:
        state = self._check(token, state, time_axis=False)
        logits, state = self.forward(token[:, None], state)
        return logits[:, 0], state

    # ------------------------------------------------------------------------------- loss
    def training_loss(self, inputs: torch.Tensor, targets: torch.Tensor,
                      loss_mask: torch.Tensor, state: PositronicState | None = None
                      ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, PositronicState]:
        """The full training objective (module docstring). loss_mask [B, T] weights the
        targets; returns (loss, its parts as floats, logits, new state)."""
        c = self.config
        state = self._check(inputs, state, time_axis=True)
        h, state, aux = self.hidden(inputs, state)
        logits = self.head(h)
        mask = loss_mask.float()
        n = mask.sum().clamp(min=1)
        ce = (F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none")
              * mask.flatten()).sum() / n
        loss = ce
        parts = {"ce": float(ce.detach())}
        if c.z_loss > 0:
            z = (logits.float().logsumexp(-1).square() * mask).sum() / n
            loss = loss + c.z_loss * z
            parts["z"] = float(z.detach())
        if c.mtp_heads and inputs.shape[1] > 1:
            mtp = self._mtp_loss(h, targets, mask)
            loss = loss + c.mtp_weight * mtp
            parts["mtp"] = float(mtp.detach())
        if self.post is not None:
            loss = loss + self.post.aux_loss(h, aux, mask, parts)
        return loss, parts, logits, state

    def _mtp_loss(self, h: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
                  ) -> torch.Tensor:
        # head j at position t predicts targets[t + j + 1] (the token j + 2 after input t)
        T = h.shape[1]
        losses = []
        for j, head in enumerate(self.draft_heads):
            shift = j + 1
            if shift >= T:
                break
            logits = self.head(head(h[:, :T - shift]))
            m = mask[:, :T - shift] * mask[:, shift:]
            ce = F.cross_entropy(logits.flatten(0, 1).float(), targets[:, shift:].flatten(),
                                 reduction="none")
            losses.append((ce * m.flatten()).sum() / m.sum().clamp(min=1))
        return torch.stack(losses).mean()

    # -------------------------------------------------------------------------- decoding
    @torch.no_grad()
    def speculative_generate(self, prompt_ids: Sequence[int], max_new_tokens: int,
                             stop_ids: Sequence[int] = (), banned_ids: Sequence[int] = ()
                             ) -> tuple[list[int], dict[str, int]]:
        """Greedy decoding accelerated by the draft heads; the output equals plain greedy
        decoding that never picks ``banned_ids``. Returns (new token ids without the stop
        token, stats: drafted, accepted, forward_calls)."""
        if not self.draft_heads:
            raise ValueError("speculative decoding needs mtp_heads > 0")
        if not prompt_ids:
            raise ValueError("the prompt must hold at least one token")
        if self.config.traits:
            raise ValueError("speculative decoding needs a model without traits (their "
                             "memories cannot be rewound)")
        device = self.embed.weight.device
        banned = torch.tensor(sorted(set(banned_ids)), dtype=torch.long, device=device)

        def pick(logits: torch.Tensor) -> torch.Tensor:
            # greedy choice over [..., vocab], never a banned id
            return logits.index_fill(-1, banned, -math.inf).argmax(-1)
        state = self.init_state(1, device)
        h, state, _ = self.hidden(torch.tensor([list(prompt_ids)], device=device), state)
        last = h[0, -1]
        out: list[int] = []
        stats = {"drafted": 0, "accepted": 0, "forward_calls": 1}
        stops = set(stop_ids)
        while len(out) < max_new_tokens:
            token = int(pick(self.head(last)))
            if token in stops:
                break
            out.append(token)
            room = max_new_tokens - len(out)
            if room == 0:
                break
            drafts = pick(self.draft_logits(last)).tolist()[:room]
            block = torch.tensor([[token] + drafts], device=device)
            h, state, _ = self.hidden(block, state)
            stats["forward_calls"] += 1
            stats["drafted"] += len(drafts)
            # main-head predictions after each fed token: verify draft i against position i
            predicted = pick(self.head(h[0])).tolist()
            accepted = 0
            for draft, want in zip(drafts, predicted):
                if draft != want or draft in stops:
                    break
                accepted += 1
            out.extend(drafts[:accepted])
            stats["accepted"] += accepted
            if accepted < len(drafts) and drafts[accepted] in stops and \
                    predicted[accepted] == drafts[accepted]:
                break
            state = state.rewind(len(drafts) - accepted)
            last = h[0, accepted]
        return out[:max_new_tokens], stats
