"""Propagator: a language model whose every layer keeps a persistent K×V memory matrix.

Per layer (docs/ARCHITECTURE.md, "Propagator block"):

    h = RMSNorm₁(x)
    q = l2norm(W_q h);           r = Mᵀq                           # memory before this write
    x = x + γ₁ ⊙ W_o r
    x = x + γ₂ ⊙ MLP(RMSNorm₂(x))
    w = RMSNorm₃(x)  if write_from == "output"  else  h
    k = l2norm(W_k w);  v = tanh(W_v w)
    β = write_rate · σ(w_β·w + b_β);   α = 1 − forget_rate · σ(w_f·w + b_f)
    M = α·M + β·k (v − Mᵀk)ᵀ          write_rule="delta" (the Propagator)
    M = α·M + β·k vᵀ                  write_rule="hebbian" (the linear-attention baseline)

With write_from="input" the memory is a linear recurrence over the block inputs and the
whole sequence runs through the chunk-parallel op. With write_from="output" (the seed's
exact dataflow) each write depends on this layer's read, so training is a per-token scan,
with the seed's guards: error clipped to [−1, 1] (delta rule only), memory to [−10, 10].

The "hebbian" baseline (Katharopoulos et al. 2020, "Transformers are RNNs") is the same block
with additive writes; `HebbianConfig` names it for the model registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.config import Config, check_choice, check_float, check_int, flag
from assoclm.layers.mlp import MLP, MLP_KINDS
from assoclm.models.base import TokenLM
from assoclm.models.state import MemoryState
from assoclm.ops.delta_rule import delta_rule_chunked, delta_rule_step, delta_rule_write
from assoclm.ops.linear_attention import (
    linear_attention_chunked,
    linear_attention_step,
    linear_attention_write,
)

WRITE_FROM = ("input", "output")
WRITE_RULES = ("delta", "hebbian")


@dataclass
class PropagatorConfig(Config):
    """Defaults are the Propagator seed's (about 22M parameters at a 4,096 vocabulary).

    write_rule: "delta" (error-correcting writes, the Propagator) or "hebbian" (additive
    writes, the linear-attention baseline; error_clip does not apply to it).
    conv_size: 0 (none, the seed's block) or the kernel size of a causal depthwise
    convolution (with SiLU) over the q, k, v projections, as DeltaNet and Gated DeltaNet have
    (Yang et al. 2024): it puts the previous tokens beside the one being written. Only with
    write_from="input".
    """

    vocab_size: int = 4096
    hidden_size: int = flag(512, help="model width")
    num_layers: int = flag(8, help="number of blocks")
    memory_key_size: int = flag(128, help="memory key size K (over all memory heads)")
    memory_value_size: int = flag(256, help="memory value size V (over all memory heads)")
    memory_heads: int = flag(1, help="memory heads (K and V are split among them)")
    mlp_multiplier: float = flag(4.0, help="MLP hidden width / model width")
    mlp: str = flag("swiglu", help="MLP kind", choices=MLP_KINDS)
    write_rate: float = flag(0.1, help="largest write strength beta")
    forget_rate: float = flag(0.02, help="largest forgetting per token (1 - retention)")
    write_from: str = flag("input", choices=WRITE_FROM,
                            help="input: chunk-parallel (default); output: the seed's dataflow")
    write_rule: str = "delta"
    layer_scale_init: float = 0.1
    norm_eps: float = 1e-6
    chunk_size: int = flag(64, help="delta-rule chunk length (power of 2)")
    error_clip: float = 1.0
    memory_clip: float = 10.0
    init_std: float = 0.02
    conv_size: int = flag(0, help="short causal convolution before q, k, v (0: none, the default)")

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("vocab_size", "hidden_size", "num_layers", "memory_key_size",
                      "memory_value_size", "memory_heads"):
            check_int(name, field, getattr(self, field))
        check_int(name, "chunk_size", self.chunk_size)
        if self.chunk_size & (self.chunk_size - 1):
            raise ValueError(f"{name}.chunk_size must be a power of two; got {self.chunk_size}")
        for field in ("memory_key_size", "memory_value_size"):
            if getattr(self, field) % self.memory_heads:
                raise ValueError(
                    f"{name}.{field}={getattr(self, field)} must be divisible by "
                    f"memory_heads={self.memory_heads}"
                )
        check_float(name, "mlp_multiplier", self.mlp_multiplier, 0, 64, low_open=True)
        check_choice(name, "mlp", self.mlp, MLP_KINDS)
        check_choice(name, "write_from", self.write_from, WRITE_FROM)
        check_choice(name, "write_rule", self.write_rule, WRITE_RULES)
        # β = write_rate·σ(·) and α = 1 − forget_rate·σ(·) must stay in (0, 1].
        check_float(name, "write_rate", self.write_rate, 0, 1, low_open=True)
        check_float(name, "forget_rate", self.forget_rate, 0, 1, high_open=True)
        check_float(name, "layer_scale_init", self.layer_scale_init, 0, 10)
        check_float(name, "norm_eps", self.norm_eps, 0, 1, low_open=True)
        check_float(name, "error_clip", self.error_clip, 0, math.inf, low_open=True)
        check_float(name, "memory_clip", self.memory_clip, 0, math.inf, low_open=True)
        check_float(name, "init_std", self.init_std, 0, 1, low_open=True)
        check_int(name, "conv_size", self.conv_size, 0)
        if self.conv_size == 1 or (self.conv_size and self.write_from != "input"):
            raise ValueError(f"{name}.conv_size must be 0 (off) or >= 2, and needs "
                             f"write_from='input'; got {self.conv_size} with "
                             f"write_from={self.write_from!r}")

    @property
    def head_key_size(self) -> int:
        return self.memory_key_size // self.memory_heads

    @property
    def head_value_size(self) -> int:
        return self.memory_value_size // self.memory_heads


def _memory_ops(config: PropagatorConfig):
    """(chunked, step, write) ops of the configured write rule.

    The three are called alike whatever the rule; only the delta rule has a write error for
    the seed's error_clip to bound.
    """
    if config.write_rule == "hebbian":
        return linear_attention_chunked, linear_attention_step, linear_attention_write
    write = partial(delta_rule_write, error_clip=config.error_clip)
    return delta_rule_chunked, delta_rule_step, write


class PropagatorBlock(nn.Module):
    """One layer: read the memory, MLP, write the memory. State: M [B, H, K/H, V/H]."""

    def __init__(self, config: PropagatorConfig):
        super().__init__()
        c = config
        self.config = c
        D, H = c.hidden_size, c.memory_heads
        self.norm_read = nn.RMSNorm(D, eps=c.norm_eps)
        self.norm_mlp = nn.RMSNorm(D, eps=c.norm_eps)
        self.norm_write = nn.RMSNorm(D, eps=c.norm_eps) if c.write_from == "output" else None
        # One projection for the read key, write key, value and the two gates (write
        # strength and forget, one per head): rows [q | k | v | gates]. In "input" mode all
        # come from the same h, so one matmul serves them; in "output" mode q (from h) and
        # the rest (from the post-MLP w) use row slices of the same weight.
        self.qkvg = nn.Linear(D, 2 * c.memory_key_size + c.memory_value_size + 2 * H,
                              bias=False)
        self.gate_bias = nn.Parameter(torch.zeros(2 * H))
        qkv = 2 * c.memory_key_size + c.memory_value_size
        self.conv = (nn.Conv1d(qkv, qkv, c.conv_size, groups=qkv, bias=False)
                     if c.conv_size else None)
        self.out = nn.Linear(c.memory_value_size, D, bias=False)
        self.mlp = MLP(D, c.mlp_multiplier, c.mlp)
        self.scale_read = nn.Parameter(torch.full((D,), c.layer_scale_init))
        self.scale_mlp = nn.Parameter(torch.full((D,), c.layer_scale_init))
        self._chunked, self._step, self._write = _memory_ops(c)

    def _heads(self, x: torch.Tensor, size: int) -> torch.Tensor:
        # (..., H·size) -> (..., H, size)
        return x.unflatten(-1, (self.config.memory_heads, size))

    def _query(self, q_lin: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._heads(q_lin, self.config.head_key_size), dim=-1)

    def _project_query(self, h: torch.Tensor) -> torch.Tensor:
        return self._query(F.linear(h, self.qkvg.weight[: self.config.memory_key_size]))

    def _project_write(self, w: torch.Tensor):
        """k, v, β, α from the write input w [..., D] (output mode: w is not the read input)."""
        return self._write_args(F.linear(w, self.qkvg.weight[self.config.memory_key_size:]))

    def _write_args(self, kvg: torch.Tensor):
        """k [..., H, K], v [..., H, V], β [..., H], α [..., H] from the projection rows
        [k | v | gates] of the write input.

        β ∈ [0, write_rate] and α ∈ [1 − forget_rate, 1] by construction (β may underflow to
        exactly 0, a harmless no-write), so the ops are called with check_values=False:
        their range check is for user input and would cost a device sync per call.
        """
        c = self.config
        k_lin, v_lin, gates = kvg.split(
            [c.memory_key_size, c.memory_value_size, 2 * c.memory_heads], dim=-1)
        k = F.normalize(self._heads(k_lin, c.head_key_size), dim=-1)
        v = torch.tanh(self._heads(v_lin, c.head_value_size))
        beta_logit, forget_logit = (gates.float() + self.gate_bias).chunk(2, dim=-1)
        beta = c.write_rate * torch.sigmoid(beta_logit)
        decay = 1 - c.forget_rate * torch.sigmoid(forget_logit)
        return k, v, beta, decay

    def _project_all(self, h: torch.Tensor, conv_state: torch.Tensor | None):
        """Input mode: q and the write arguments from one matmul of h [B, T, D] (and the
        short convolution over the q, k, v rows, carrying its last inputs)."""
        qkvg = self.qkvg(h)
        if self.conv is not None:
            qkvg, conv_state = self._convolve(qkvg, conv_state)
        K = self.config.memory_key_size
        return (self._query(qkvg[..., :K]), *self._write_args(qkvg[..., K:])), conv_state

    def _convolve(self, qkvg: torch.Tensor, past: torch.Tensor):
        """Causal depthwise convolution + SiLU over the q, k, v channels of [B, T, ·];
        `past` [B, conv_size − 1, C] holds the inputs before this T."""
        C = self.conv.in_channels
        x = torch.cat([past.to(qkvg.dtype), qkvg[..., :C]], dim=1)  # [B, cs − 1 + T, C]
        y = F.silu(F.conv1d(x.transpose(1, 2), self.conv.weight, groups=C).transpose(1, 2))
        return torch.cat([y, qkvg[..., C:]], dim=-1), x[:, x.shape[1] - past.shape[1]:]

    def _after_read(self, x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        # r: (..., H, V/H) read from memory -> residual update and MLP
        x = x + self.scale_read * self.out(r.flatten(-2).to(x.dtype))
        return x + self.scale_mlp * self.mlp(self.norm_mlp(x))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, conv: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """x [B, T, D], memory [B, H, K/H, V/H], conv [B, conv_size − 1, C] or None
        -> (x [B, T, D], memory, conv)."""
        if self.config.write_from == "input":
            (q, k, v, beta, decay), conv = self._project_all(self.norm_read(x), conv)
            r, memory = self._chunked(
                q, k, v, beta, decay, initial_state=memory, read="before",
                chunk_size=self.config.chunk_size, check_values=False,
            )
            return self._after_read(x, r), memory, conv
        outputs = []
        for x_t in x.unbind(1):
            y, memory, _ = self.step(x_t, memory)
            outputs.append(y)
        return torch.stack(outputs, dim=1), memory, None

    def step(self, x: torch.Tensor, memory: torch.Tensor, conv: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One token: x [B, D], memory [B, H, K/H, V/H], conv -> (x [B, D], memory, conv)."""
        c = self.config
        h = self.norm_read(x)
        if c.write_from == "input":
            if self.conv is None:
                (q, k, v, beta, decay), _ = self._project_all(h, None)
            else:  # the convolution runs over a time axis of one
                args, conv = self._project_all(h[:, None], conv)
                q, k, v, beta, decay = (t.squeeze(1) for t in args)
            r, memory = self._step(q, k, v, beta, decay, memory, read="before",
                                   check_values=False)
            return self._after_read(x, r), memory, conv
        # The seed's dataflow: read before the MLP, write after it, with its clipping.
        q = self._project_query(h)
        r = torch.einsum("bhk,bhkv->bhv", q.float(), memory)
        x = self._after_read(x, r)
        k, v, beta, decay = self._project_write(self.norm_write(x))
        memory = self._write(k, v, beta, decay, memory, state_clip=c.memory_clip,
                             check_values=False)
        return x, memory, None


class PropagatorLM(TokenLM):
    """Token ids -> next-token logits, with an explicit constant-size state.

    forward(tokens [B, T], state=None) -> (logits [B, T, vocab], state)
    step(token [B], state) -> (logits [B, vocab], state)
    """

    def __init__(self, config: PropagatorConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(PropagatorBlock(config) for _ in range(config.num_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.apply(self._init_weights)

    def init_state(self, batch_size: int, device=None) -> MemoryState:
        c = self.config
        device = self.embed.weight.device if device is None else device
        shape = (batch_size, c.memory_heads, c.head_key_size, c.head_value_size)
        convs = ()
        if c.conv_size:
            conv_shape = (batch_size, c.conv_size - 1,
                          2 * c.memory_key_size + c.memory_value_size)
            convs = tuple(torch.zeros(conv_shape, device=device) for _ in self.blocks)
        return MemoryState(tuple(torch.zeros(shape, device=device) for _ in self.blocks), convs)

    def _run_blocks(self, x: torch.Tensor, state: MemoryState, one_token: bool
                    ) -> tuple[torch.Tensor, MemoryState]:
        if bool(self.config.conv_size) != bool(state.convs):
            raise ValueError("the state's short-convolution part does not match this model "
                             f"(conv_size={self.config.conv_size})")
        memories, convs = [], []
        conv_states = state.convs or (None,) * len(self.blocks)
        for block, memory, conv in zip(self.blocks, state.memories, conv_states):
            x, memory, conv = block.step(x, memory, conv) if one_token else block(x, memory, conv)
            memories.append(memory)
            if conv is not None:
                convs.append(conv)
        return self._logits(x), MemoryState(tuple(memories), tuple(convs))

    def forward(self, tokens: torch.Tensor, state: MemoryState | None = None
                ) -> tuple[torch.Tensor, MemoryState]:
        state = self._check(tokens, state, time_axis=True)
        return self._run_blocks(self.embed(tokens), state, one_token=False)

    def step(self, token: torch.Tensor, state: MemoryState | None = None
             ) -> tuple[torch.Tensor, MemoryState]:
        state = self._check(token, state, time_axis=False)
        return self._run_blocks(self.embed(token), state, one_token=True)


@dataclass
class HebbianConfig(PropagatorConfig):
    """The Hebbian baseline: a Propagator with additive writes, built by `PropagatorLM`.

    M = α·M + β·k vᵀ, gated linear attention (Katharopoulos et al. 2020, "Transformers are
    RNNs", arXiv 2006.16236). Every other field and default is PropagatorConfig's.
    """

    write_rule: str = "hebbian"

    def __post_init__(self) -> None:
        if self.write_rule != "hebbian":
            raise ValueError(
                f"{type(self).__name__}.write_rule must be 'hebbian'; got {self.write_rule!r} "
                "(use PropagatorConfig for write_rule='delta')"
            )
        super().__post_init__()
