"""Recurrent depth: one weight-tied block applied a number of times chosen at test time.

Geiping, McLeish, Jain, Kirchenbauer, Singh, Bartoldson, Kailkhura, Bhatele, Goldstein 2025,
"Scaling up Test-Time Compute with Latent Reasoning: A Recurrent Depth Approach",
arXiv 2502.05171. With e = Embed(tokens) and a zero initial latent z₀:

    z_i = Block(Adapter([z_{i−1}; e]))        i = 1 .. depth      (injection = "adapter")
    logits = RMSNorm(z_depth) · Embedᵀ

The adapter, a linear map of the concatenated latent and embedding back to the width, is the
paper's input injection (its §3, "s_i = R(e, s_{i−1})"): every iteration sees the input
again, so the iteration can run longer than in training without forgetting the question.
With ``injection = "none"`` the embedding is only the starting point (z₀ = e): an ordinary
layer stack. The paper starts from a random z₀; a zero z₀ keeps the model deterministic,
which streaming equivalence needs.

Block (the paper's "sandwich" format, which keeps the latent's scale fixed however often the
block is applied):

    x̂ = RMSNorm₂(x + Attention(RMSNorm₁(x)))          # causal, RoPE, QK-norm, GQA, window
    x = RMSNorm₄(x̂ + MLP(RMSNorm₃(x̂)))                # SwiGLU, or a top-k mixture of them

``tied = True``: one block, applied ``depth`` times; ``depth`` is any integer >= 1 at test
time. ``tied = False``: ``train_depth`` distinct blocks applied once each, the untied
baseline with ``train_depth``× the block parameters.

Training depth (tied): ``depth_sampling = "lognormal_poisson"`` draws a depth per forward
call as in the paper (its eq. 1): τ ~ N(log(r̄ − 1) − σ²/2, σ), r = 1 + Poisson(e^τ), so that
E[r] = r̄ = ``train_depth``, capped at ``max_depth``. Gradients flow only through the last
``backprop_depth`` iterations (truncated backpropagation, the paper's k = 8; 0 = all), so a
long draw costs forward passes, not memory. The draw uses torch's global generator; in eval
mode, or with ``"fixed"``, the depth is ``train_depth``.

State: one KV cache per iteration (:class:`~assoclm.layers.kv_cache.KVCacheState` with
``depth`` layers): iteration i of token t attends to iteration i of the tokens before it, so
a chunked or token-by-token run equals a full one. A state fixes the depth it was built with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from assoclm.config import Config, check_choice, check_float, check_int, flag
from assoclm.layers.attention import CausalSelfAttention
from assoclm.layers.kv_cache import KVCache, KVCacheState
from assoclm.layers.mlp import MLP
from assoclm.layers.moe import MoE
from assoclm.models.base import TokenLM

INJECTIONS = ("adapter", "none")
DEPTH_SAMPLING = ("lognormal_poisson", "fixed")
# the attention window standing for "no window": larger than any sequence
FULL_WINDOW = 1 << 62


@dataclass
class RecurrentDepthConfig(Config):
    """Defaults: a small modern block (GQA with 2 KV heads, QK-norm, full attention, dense
    SwiGLU), tied, trained at a mean depth of 8 with the paper's truncation k = 8."""

    vocab_size: int = 4096
    hidden_size: int = flag(256, help="model width")
    num_heads: int = flag(4, help="attention heads")
    num_kv_heads: int = flag(2, help="key/value heads (GQA)")
    mlp_multiplier: float = flag(4.0, help="MLP hidden width / model width")
    rope_base: float = 10000.0
    qk_norm: bool = True
    # sliding attention window in tokens, the query included; None or 0: full attention
    window: int | None = None
    # 0: a dense SwiGLU MLP; otherwise a top-k mixture of this many SwiGLU experts
    moe_experts: int = 0
    moe_top_k: int = 2
    tied: bool = True
    train_depth: int = 8
    depth_sampling: str = "lognormal_poisson"
    depth_sigma: float = 0.5
    max_depth: int = 32
    backprop_depth: int = 8
    injection: str = "adapter"
    norm_eps: float = 1e-6
    init_std: float = 0.02

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("vocab_size", "hidden_size", "num_heads", "num_kv_heads", "train_depth",
                      "max_depth"):
            check_int(name, field, getattr(self, field))
        for field in ("moe_experts", "backprop_depth"):
            check_int(name, field, getattr(self, field), minimum=0)
        if self.window is not None:
            check_int(name, "window", self.window, minimum=0)
        for field in ("qk_norm", "tied"):
            if not isinstance(getattr(self, field), bool):
                raise ValueError(f"{name}.{field} must be true or false; "
                                 f"got {getattr(self, field)!r}")
        if self.hidden_size % self.num_heads or self.head_dim % 2:
            raise ValueError(f"{name}.hidden_size={self.hidden_size} must split into "
                             f"num_heads={self.num_heads} heads of an even size (RoPE)")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"{name}.num_kv_heads={self.num_kv_heads} must divide "
                             f"num_heads={self.num_heads}")
        if self.moe_experts:
            check_int(name, "moe_top_k", self.moe_top_k)
            if self.moe_top_k > self.moe_experts:
                raise ValueError(f"{name}.moe_top_k={self.moe_top_k} must be <= "
                                 f"moe_experts={self.moe_experts}")
        if self.max_depth < self.train_depth:
            raise ValueError(f"{name}.max_depth={self.max_depth} must be >= "
                             f"train_depth={self.train_depth}")
        check_choice(name, "depth_sampling", self.depth_sampling, DEPTH_SAMPLING)
        check_choice(name, "injection", self.injection, INJECTIONS)
        check_float(name, "mlp_multiplier", self.mlp_multiplier, 0, 64, low_open=True)
        check_float(name, "rope_base", self.rope_base, 1, math.inf, low_open=True,
                    high_open=True)
        check_float(name, "depth_sigma", self.depth_sigma, 0, 10)
        check_float(name, "norm_eps", self.norm_eps, 0, 1, low_open=True)
        check_float(name, "init_std", self.init_std, 0, 1, low_open=True)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def attention_window(self) -> int:
        return self.window or FULL_WINDOW


class RecurrentBlock(nn.Module):
    """Sandwich-norm attention and MLP, each on a residual branch. State: one KVCache."""

    def __init__(self, config: RecurrentDepthConfig):
        super().__init__()
        c = config
        self.norm_attn_in = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.attn = CausalSelfAttention(c.hidden_size, c.num_heads, c.attention_window,
                                        c.rope_base, num_kv_heads=c.num_kv_heads,
                                        qk_norm=c.qk_norm, norm_eps=c.norm_eps)
        self.norm_attn_out = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.norm_mlp_in = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.mlp = (MoE(c.hidden_size, c.mlp_multiplier, c.moe_experts, c.moe_top_k)
                    if c.moe_experts else MLP(c.hidden_size, c.mlp_multiplier, "swiglu"))
        self.norm_mlp_out = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)

    def forward(self, x: torch.Tensor, cache: KVCache,
                rope: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, KVCache]:
        """x [B, T, D], cache, rope (cos, sin) [T, Dh / 2] -> (x [B, T, D], cache)."""
        y, cache = self.attn(self.norm_attn_in(x), cache, rope)
        x = self.norm_attn_out(x + y)
        return self.norm_mlp_out(x + self.mlp(self.norm_mlp_in(x))), cache


class RecurrentDepthLM(TokenLM):
    """Token ids -> next-token logits through a block iterated ``depth`` times.

    forward(tokens [B, T], state=None, depth=None) -> (logits [B, T, vocab], state)
    step(token [B], state=None, depth=None) -> (logits [B, vocab], state)

    depth: iterations for this call; None takes the state's depth, else a training draw (tied,
    training mode) or ``train_depth``. An untied model runs only at ``train_depth``.
    """

    def __init__(self, config: RecurrentDepthConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.hidden_size)
        self.adapter = (nn.Linear(2 * c.hidden_size, c.hidden_size, bias=False)
                        if c.injection == "adapter" else None)
        num_blocks = 1 if c.tied else c.train_depth
        self.blocks = nn.ModuleList(RecurrentBlock(c) for _ in range(num_blocks))
        self.norm = nn.RMSNorm(c.hidden_size, eps=c.norm_eps)
        self.apply(self._init_weights)

    def init_state(self, batch_size: int, device=None, depth: int | None = None
                   ) -> KVCacheState:
        """Empty caches, one per iteration of a run at ``depth`` (default train_depth)."""
        c = self.config
        depth = self._check_depth(c.train_depth if depth is None else depth)
        device = self.embed.weight.device if device is None else device
        return KVCacheState.empty(depth, batch_size, c.num_kv_heads, c.head_dim, device,
                                  self.embed.weight.dtype)

    def sample_depth(self) -> int:
        """A training depth: the paper's log-normal Poisson draw, or train_depth."""
        c = self.config
        if not c.tied or c.depth_sampling == "fixed" or c.train_depth == 1:
            return c.train_depth
        sigma = c.depth_sigma
        tau = torch.empty(()).normal_(math.log(c.train_depth - 1) - sigma ** 2 / 2, sigma)
        return min(1 + int(torch.poisson(tau.exp())), c.max_depth)

    def _check_depth(self, depth: int) -> int:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an integer >= 1; got {depth!r}")
        if not self.config.tied and depth != self.config.train_depth:
            raise ValueError(f"an untied model has {self.config.train_depth} blocks and runs "
                             f"at exactly that depth; got depth={depth}")
        return depth

    def _resolve(self, tokens: torch.Tensor, state: KVCacheState | None, depth: int | None,
                 time_axis: bool) -> KVCacheState:
        """Validate tokens ([B, T] or [B]), depth and state; a fresh state when None."""
        want = 2 if time_axis else 1
        if tokens.dim() != want or tokens.dtype not in (torch.int32, torch.int64):
            layout = "[B, T]" if time_axis else "[B]"
            raise ValueError(f"tokens must be an integer tensor of shape {layout}; "
                             f"got {tokens.dtype} {list(tokens.shape)}")
        if state is None:
            if depth is None:
                depth = self.sample_depth() if self.training else self.config.train_depth
            return self.init_state(tokens.shape[0], tokens.device, depth)
        if depth is not None and self._check_depth(depth) != state.num_layers:
            raise ValueError(f"depth={depth} does not match the state, which holds caches "
                             f"for {state.num_layers} iterations")
        if state.batch_size != tokens.shape[0]:
            raise ValueError(f"state has batch {state.batch_size}; the tokens batch is "
                             f"{tokens.shape[0]}")
        self._check_depth(state.num_layers)
        return state

    def _iterate(self, e: torch.Tensor, state: KVCacheState
                 ) -> tuple[torch.Tensor, KVCacheState]:
        # e [B, T, D]; the rotary angles of these T positions are shared by all iterations
        depth = state.num_layers
        rope = self.blocks[0].attn.rotary(state.tokens_seen, e.shape[1], e.device)
        grad = torch.is_grad_enabled()
        k = self.config.backprop_depth if self.config.tied else 0
        # truncated backpropagation: the first depth − k iterations record no graph
        no_grad_until = max(depth - k, 0) if k else 0
        z = torch.zeros_like(e) if self.adapter is not None else e
        caches = []
        for i, cache in enumerate(state.layers):
            block = self.blocks[i if len(self.blocks) > 1 else 0]
            with torch.set_grad_enabled(grad and i >= no_grad_until):
                x = z if self.adapter is None else self.adapter(torch.cat((z, e), dim=-1))
                z, cache = block(x, cache, rope)
            caches.append(cache)
        return self._logits(z), KVCacheState(tuple(caches))

    def forward(self, tokens: torch.Tensor, state: KVCacheState | None = None,
                depth: int | None = None) -> tuple[torch.Tensor, KVCacheState]:
        state = self._resolve(tokens, state, depth, time_axis=True)
        return self._iterate(self.embed(tokens), state)

    def step(self, token: torch.Tensor, state: KVCacheState | None = None,
             depth: int | None = None) -> tuple[torch.Tensor, KVCacheState]:
        state = self._resolve(token, state, depth, time_axis=False)
        logits, state = self._iterate(self.embed(token)[:, None], state)
        return logits[:, 0], state


__all__ = ["RecurrentBlock", "RecurrentDepthConfig", "RecurrentDepthLM"]
