"""Positronic's ring traits: four optional additions to each layer's QuazimotoBlock.

Each trait is off unless named in ``PositronicConfig.traits``, ends in a zero-initialised
decoder (so at initialisation the model computes exactly what it computes without it), and
trains from the first optimiser step on. They act only through the block's hooks
(:mod:`assoclm.layers.quazimoto`): ``phase_offset`` and ``extra_drive`` [B, T, N] and the
per-ring ``modulation`` [B, T, R]. Notation: x [B, T, D] the residual stream after the
layer's attention, h = RMSNorm(x) the block's own normed input, θ⁰ = W_θ h [N] the block's
initial phases, rings r = 0 .. R−1 of sizes n_r, r(i) the ring of oscillator i, and
w = ``controller_dim`` the width of the small per-ring maps (interstitial and controller).

**Fractal phase seed** (``fractal_seed``). Token id v is the point c_v of the 2-D Halton
sequence (Halton 1960; bases 2 and 3, index v + 1) scaled to the rectangle
Re c ∈ [−2, 0.5], Im c ∈ [−1.25, 1.25] around the Mandelbrot set (Mandelbrot 1980). The orbit
z_0 = 0, z_k = z_{k−1}² + c_v, k = 1 .. S (S = 8), stops moving once |z| > 2 (the orbit has
escaped and would overflow), so every z_k is finite (|z_k| < 7). Features
f_v = [cos arg z_k, sin arg z_k (k = 1..S), escape time / S] [2S + 1] form a fixed table
regenerated from the vocabulary size (a non-persistent buffer, never in a checkpoint), and

    phase_offset = W_out tanh(W_in f_v)                 W_out [N, 2(2S + 1)] = 0 at init

**Interstitial rings** (``interstitial``): one between each pair of adjacent rings (j, j+1),
j = 0 .. R−2. Each produces a constant drive (d⁻_j, d⁺_j) for its two rings during the
integration; ring r sums d⁻_r and d⁺_{r−1}, and every oscillator of ring r receives it
through ``extra_drive``. Two kinds, added:

  a. phase-space attention: with φ_j = [cos θ⁰, sin θ⁰] restricted to the oscillators of
     rings j and j+1, (q, k, v)_j = W_j φ_j [3w], and causal softmax attention (scale
     1/√w) over the last ``interstitial_window`` tokens, the token itself included
     (sliding-window attention, as in Longformer, Beltagy et al. 2020, arXiv 2004.05150):
     a_j = Σ_s softmax(q_j·k_j,s/√w) v_j,s;  (d⁻, d⁺)_j += tanh(A_jᵀ a_j), A_j [w, 2] = 0.
  b. hashed n-gram memory (hashed n-gram embeddings as in fastText, Bojanowski et al. 2017,
     and the Byte Latent Transformer, Pagnoni et al. 2024, arXiv 2412.09871): the 1-, 2-
     and 3-token windows ending at the current token, hashed into ``ngram_buckets`` rows
     of one table per order; e = Σ_n E_n[hash(window_n)] [(R−1)·w];
     (d⁻, d⁺)_j += tanh(G_jᵀ e_j), G_j [w, 2] = 0. Before the session's first tokens the
     window holds the id 0 ("none"; tokens are stored as id + 1), so the first tokens
     have their own start-of-session n-grams.

**Per-ring controllers** (``controllers``): per ring, a w × w fast-weight matrix S_r
(Schmidhuber 1992; Ba et al. 2016, arXiv 1610.06258) predicting what the ring sees from
the context, trained online by the delta rule on its own error, not by backpropagation
(Widrow & Hoff 1960; as fast-weight programmers, Schlag et al. 2021, arXiv 2102.11174):

    k_r = l2norm(W_k h)_r [w],   v_r = the ring's Daido order parameters of θ⁰:
          [Re, Im] of (1/n_r) Σ_{i ∈ r} e^{i m θ⁰_i}, m = 1 .. ⌈w/2⌉ (Daido 1992), first w
    p_r = S_rᵀ k_r           (read before the write: the prediction)
    e_r = v_r − p_r          (the prediction error)
    S_r ← S_r + β sg(k_r) (sg(v_r) − S_rᵀ sg(k_r))ᵀ      β = ½, sg = stop-gradient
    modulation[m]_r = tanh(M_rᵀ [p_r, e_r])_m,  m ∈ coupling, frustration, center, drive

with M_r [2w, 4] = 0 at init. The bounded modulations keep the coupling, centre and drive
gains, scaled by 1 + m, in (0, 2)× their values and move the frustration by less than a
radian. W_k learns through the read p; the fast weights S are state, not parameters.

**Per-ring memory specialists** (``specialists``): per ring, E = ``specialist_experts``
mini-experts, each a value map and its own test-time-writable associative store
S_{r,e} [K, V] (K = V = ``specialist_dim``). A router picks the top k =
``specialist_top_k`` per ring and token (Shazeer et al. 2017, arXiv 1701.06538), with
weights g_{r,e} (softmax over the chosen, 0 for the others). With q_r, k_r = l2norm(W_q h)_r,
l2norm(W_k h)_r shared by the ring's experts and v_{r,e} = W_{v,r,e} h, the chosen experts
write by the delta rule with strength g and are read after the write (a test-time memory,
as in Titans, Behrouz et al. 2024, arXiv 2501.00663, here per ring and routed):

    S_{r,e} ← S_{r,e} + g_{r,e} k_r (v_{r,e} − S_{r,e}ᵀ k_r)ᵀ,    y_r = Σ_e g_{r,e} S_{r,e}ᵀ q_r
    extra_drive_i += tanh(Σ_v D_{i v} y_{r(i), v})                 D [N, V] = 0 at init

so each ring's output drives its own oscillators with a learned pattern. Writes are
differentiable (the router, keys and values learn through later reads); training runs
them chunk-parallel (:func:`~assoclm.ops.delta_rule.delta_rule_chunked`).

``freeze_memories``: the test-time memories (the specialists' stores and the controllers'
fast weights) are read but never written; they stay exactly as the state holds them.

State (per layer, batch first, all zeros = an empty session, so a lane reset is a fresh
session; memories in float32, as the delta-rule ops keep them):

    prev_tokens    [B, 2] long          ids + 1 of the two previous tokens (0 = none)
    window_keys    [B, W, R−1, w]       the attention ring's keys of the last W tokens
    window_values  [B, W, R−1, w]
    window_valid   [B, W]               1 where the slot holds a token
    controller     [B, R, w, w]         the controllers' fast weights
    specialists    [B, R, E, K, V]      the specialists' stores

The position of a token never enters (``first_position`` is unused): streaming a sequence in
any chunks gives what one forward over it gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from assoclm.layers.quazimoto import MODULATIONS, QuazimotoBlock
from assoclm.models.positronic.config import RING_TRAITS, PositronicConfig
from assoclm.ops.delta_rule import delta_rule_chunked, delta_rule_step
from assoclm.ops.kuramoto import ring_average_matrix, ring_index

# Mandelbrot orbit: steps, the rectangle the Halton points fill, the escape radius
FRACTAL_STEPS = 8
FRACTAL_RE = (-2.0, 0.5)
FRACTAL_IM = (-1.25, 1.25)
ESCAPE_RADIUS = 2.0
# write strength of the controllers' online delta rule
CONTROLLER_BETA = 0.5
# chunk size of the chunk-parallel delta rule in training passes
DELTA_CHUNK = 64
# n-gram hash: a polynomial hash mod the Mersenne prime 2^31 − 1, then Knuth's
# multiplicative hash (2^32 / golden ratio) whose top bits pick the bucket
_HASH_PRIME = 2**31 - 1
_HASH_BASE = 1_000_003
_HASH_GOLDEN = 2_654_435_761
MAX_NGRAM_BUCKETS = 2**24
NGRAM_ORDERS = 3


# ---------------------------------------------------------------------------- fractal seed
def radical_inverse(index: torch.Tensor, base: int) -> torch.Tensor:
    """index [...] (integers >= 0) -> the van der Corput radical inverse in ``base``:
    the base-b digits of the index mirrored behind the point, float64 in [0, 1)."""
    if base < 2:
        raise ValueError(f"base must be an integer >= 2; got {base}")
    i = index.long().clone()
    out = torch.zeros(i.shape, dtype=torch.float64, device=i.device)
    scale = 1.0 / base
    while bool((i > 0).any()):
        out = out + scale * (i % base).double()
        i = i // base
        scale /= base
    return out


def mandelbrot_features(vocab_size: int, steps: int = FRACTAL_STEPS) -> torch.Tensor:
    """The fixed fractal table [vocab_size, 2·steps + 1] (float32; module docstring):
    per token, cos and sin of arg z_k for the orbit z_k = z_{k−1}² + c (k = 1..steps, frozen
    once |z| > 2), then the escape time as a fraction of ``steps``. Computed in float64,
    deterministic from ``vocab_size`` alone."""
    if vocab_size < 1 or steps < 1:
        raise ValueError(f"vocab_size and steps must be >= 1; got {vocab_size}, {steps}")
    index = torch.arange(1, vocab_size + 1)
    cr = FRACTAL_RE[0] + (FRACTAL_RE[1] - FRACTAL_RE[0]) * radical_inverse(index, 2)
    ci = FRACTAL_IM[0] + (FRACTAL_IM[1] - FRACTAL_IM[0]) * radical_inverse(index, 3)
    zr, zi = torch.zeros_like(cr), torch.zeros_like(ci)
    alive = torch.zeros_like(cr)
    angles = []
    for _ in range(steps):
        inside = zr.square() + zi.square() <= ESCAPE_RADIUS**2
        zr, zi = (torch.where(inside, zr.square() - zi.square() + cr, zr),
                  torch.where(inside, 2 * zr * zi + ci, zi))
        alive = alive + (zr.square() + zi.square() <= ESCAPE_RADIUS**2).double()
        angles.append(torch.atan2(zi, zr))
    arg = torch.stack(angles, -1)
    table = torch.cat((arg.cos(), arg.sin(), (alive / steps)[:, None]), -1)
    return table.float()


class FractalPhaseSeed(nn.Module):
    """tokens [B, T] -> phase_offset [B, T, N] = W_out tanh(W_in f_token) (module docstring).

    The table f [vocab, 2S + 1] is a non-persistent buffer: rebuilt from ``vocab_size``,
    never saved."""

    def __init__(self, vocab_size: int, num_oscillators: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.register_buffer("table", mandelbrot_features(vocab_size), persistent=False)
        features = self.table.shape[1]
        self.inp = nn.Linear(features, 2 * features, bias=False)
        self.out = nn.Linear(2 * features, num_oscillators, bias=False)

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.out.weight)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        f = self.table[tokens].to(self.inp.weight.dtype)
        return self.out(torch.tanh(self.inp(f)))

    def gates(self) -> list[nn.Parameter]:
        return [self.out.weight]


# ---------------------------------------------------------------------- interstitial rings
def ngram_bucket(window: torch.Tensor, buckets: int) -> torch.Tensor:
    """window [..., n] integers in [0, 2^31 − 1) -> bucket [...] long in [0, buckets).

    h = (…((w_1·B + w_2)·B + w_3)…) mod (2^31 − 1) with B = 1 000 003, then bucket =
    ⌊((h · 2654435761) mod 2^32) · buckets / 2^32⌋ (Knuth's multiplicative hash, top bits).
    Every intermediate stays below 2^63."""
    if not 1 <= buckets <= MAX_NGRAM_BUCKETS:
        raise ValueError(f"buckets must be in [1, {MAX_NGRAM_BUCKETS}]; got {buckets}")
    h = torch.zeros(window.shape[:-1], dtype=torch.long, device=window.device)
    for i in range(window.shape[-1]):
        h = (h * _HASH_BASE + window[..., i].long()) % _HASH_PRIME
    h = (h * _HASH_GOLDEN) % 2**32
    return (h * buckets) >> 32


def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                     past_k: torch.Tensor, past_v: torch.Tensor, past_valid: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal softmax attention over the last W tokens, the current one included, with a
    rolling buffer of the W tokens before the chunk.

    Args:
        q, k, v: this chunk's queries, keys, values [B, T, H, w].
        past_k, past_v: the buffer [B, W, H, w], oldest first; past_valid [B, W] (1 where a
            slot holds a token, 0 for the empty slots of a young session).

    Returns:
        out [B, T, H, w] (float32), and the new buffer (keys, values [B, W, H, w] in the
        buffer's dtype, valid [B, W]).
    """
    B, T, H, w = q.shape
    W = past_k.shape[1]
    keys = torch.cat((past_k, k.to(past_k.dtype)), 1)                    # [B, W+T, H, w]
    values = torch.cat((past_v, v.to(past_v.dtype)), 1)
    valid = torch.cat((past_valid, past_valid.new_ones(B, T)), 1)        # [B, W+T]
    # window s covers slots [s, s + W): token t of the chunk (slot W + t) reads window t + 1
    win_k = keys.unfold(1, W, 1)[:, 1:].float()                          # [B, T, H, w, W]
    win_v = values.unfold(1, W, 1)[:, 1:].float()
    win_valid = valid.unfold(1, W, 1)[:, 1:]                             # [B, T, W]
    scores = torch.einsum("bthd,bthdw->bthw", q.float(), win_k) / math.sqrt(w)
    scores = scores.masked_fill(win_valid[:, :, None, :] == 0, float("-inf"))
    out = torch.einsum("bthw,bthdw->bthd", scores.softmax(-1), win_v)
    return out, keys[:, -W:], values[:, -W:], valid[:, -W:]


class InterstitialRings(nn.Module):
    """The R − 1 rings between adjacent oscillator rings (module docstring):
    θ⁰ [B, T, N] and tokens [B, T] -> a drive per ring [B, T, R] and the new state."""

    def __init__(self, ring_sizes: Sequence[int], width: int, window: int, buckets: int):
        super().__init__()
        R = len(ring_sizes)
        if R < 2:
            raise ValueError(f"interstitial rings sit between rings and need at least two; "
                             f"got ring_sizes {list(ring_sizes)}")
        if not 1 <= buckets <= MAX_NGRAM_BUCKETS:
            raise ValueError(f"ngram_buckets must be in [1, {MAX_NGRAM_BUCKETS}]; "
                             f"got {buckets}")
        J = R - 1
        self.width, self.window, self.buckets, self.num = width, window, buckets, J
        # rings are consecutive blocks: the pair (j, j+1) is the slice [bounds_j, bounds_{j+2})
        bounds = [0]
        for n in ring_sizes:
            bounds.append(bounds[-1] + n)
        self.pairs = [(bounds[j], bounds[j + 2]) for j in range(J)]
        # W_j [3w, 2(n_j + n_{j+1})]: queries, keys, values from the pair's cos θ⁰, sin θ⁰
        self.qkv = nn.ParameterList(nn.Parameter(torch.empty(3 * width, 2 * (hi - lo)))
                                    for lo, hi in self.pairs)
        self.attn_out = nn.Parameter(torch.zeros(J, width, 2))
        self.ngram = nn.Embedding(NGRAM_ORDERS * buckets, J * width)
        self.ngram_out = nn.Parameter(torch.zeros(J, width, 2))
        self.reset_parameters()

    def reset_parameters(self, init_std: float = 0.02) -> None:
        """W_j ~ N(0, init_std) (the model's init) and the two decoders A, G = 0. The n-gram
        tables keep the model's init."""
        for weight in self.qkv:
            nn.init.normal_(weight, std=init_std)
        nn.init.zeros_(self.attn_out)
        nn.init.zeros_(self.ngram_out)

    def init_state(self, batch_size: int, device=None, dtype=torch.float32
                   ) -> dict[str, torch.Tensor]:
        shape = (batch_size, self.window, self.num, self.width)
        return {"prev_tokens": torch.zeros(batch_size, NGRAM_ORDERS - 1, dtype=torch.long,
                                           device=device),
                "window_keys": torch.zeros(shape, device=device, dtype=dtype),
                "window_values": torch.zeros(shape, device=device, dtype=dtype),
                "window_valid": torch.zeros(batch_size, self.window, device=device,
                                            dtype=dtype)}

    def ngram_rows(self, tokens: torch.Tensor, prev: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T], prev [B, 2] (ids + 1, 0 = none) -> the rows of the three tables
        [B, T, 3] (order n in [n·buckets, (n+1)·buckets)) and the new prev [B, 2]."""
        T = tokens.shape[1]
        ids = torch.cat((prev, tokens.long() + 1), 1)                       # [B, T + 2]
        rows = []
        for n in range(1, NGRAM_ORDERS + 1):
            window = ids.unfold(1, n, 1)[:, NGRAM_ORDERS - n:]              # [B, T, n]
            rows.append(ngram_bucket(window, self.buckets) + (n - 1) * self.buckets)
        return torch.stack(rows, -1), ids[:, T:]

    def forward(self, theta0: torch.Tensor, tokens: torch.Tensor,
                state: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        B, T, _ = theta0.shape
        J, w = self.num, self.width
        dtype = self.attn_out.dtype
        cos, sin = theta0.cos().to(dtype), theta0.sin().to(dtype)
        qkv = torch.stack([F.linear(torch.cat((cos[..., lo:hi], sin[..., lo:hi]), -1), weight)
                           for (lo, hi), weight in zip(self.pairs, self.qkv)], 2)  # [B,T,J,3w]
        q, k, v = qkv.split(w, -1)
        attended, keys, values, valid = window_attention(
            q, k, v, state["window_keys"], state["window_values"], state["window_valid"])
        drive = torch.tanh(torch.einsum("btjd,jdo->btjo", attended.to(dtype),
                                        self.attn_out))                 # [B, T, J, 2]
        rows, prev = self.ngram_rows(tokens, state["prev_tokens"])
        e = self.ngram(rows).sum(2).view(B, T, J, w)
        drive = drive + torch.tanh(torch.einsum("btjd,jdo->btjo", e, self.ngram_out))
        # ring r: the lower side of interstitial r plus the upper side of interstitial r − 1
        ring_drive = F.pad(drive[..., 0], (0, 1)) + F.pad(drive[..., 1], (1, 0))  # [B, T, R]
        new = {"prev_tokens": prev, "window_keys": keys, "window_values": values,
               "window_valid": valid}
        return ring_drive, new

    def gates(self) -> list[nn.Parameter]:
        return [self.attn_out, self.ngram_out]


# ----------------------------------------------------------------------------- controllers
def daido_features(theta: torch.Tensor, ring_sizes: Sequence[int], width: int) -> torch.Tensor:
    """θ [..., N] -> [..., R, width]: per ring, Re and Im of the Daido order parameters
    (1/n_r) Σ_{i∈r} e^{i m θ_i}, m = 1 .. ⌈width/2⌉, interleaved (Re₁, Im₁, Re₂, …), first
    ``width`` kept."""
    harmonics = torch.arange(1, (width + 1) // 2 + 1, device=theta.device, dtype=theta.dtype)
    angle = theta[..., None] * harmonics                                   # [..., N, M]
    P = ring_average_matrix(ring_sizes, theta.device, theta.dtype)         # [N, R]
    re = torch.einsum("...nm,nr->...rm", angle.cos(), P)
    im = torch.einsum("...nm,nr->...rm", angle.sin(), P)
    return torch.stack((re, im), -1).flatten(-2)[..., :width]


class RingControllers(nn.Module):
    """Per-ring fast-weight predictors (module docstring): h [B, T, D], θ⁰ [B, T, N], the
    fast weights S [B, R, w, w] -> (modulation: four [B, T, R] tensors, new S)."""

    def __init__(self, dim: int, ring_sizes: Sequence[int], width: int, freeze: bool):
        super().__init__()
        self.ring_sizes, self.width, self.freeze = tuple(ring_sizes), width, freeze
        R = len(self.ring_sizes)
        self.key = nn.Linear(dim, R * width, bias=False)
        self.decoder = nn.Parameter(torch.zeros(R, 2 * width, len(MODULATIONS)))

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.decoder)

    def init_state(self, batch_size: int, device=None) -> dict[str, torch.Tensor]:
        R, w = len(self.ring_sizes), self.width
        return {"controller": torch.zeros(batch_size, R, w, w, device=device)}

    def forward(self, h: torch.Tensor, theta0: torch.Tensor, S: torch.Tensor
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        B, T, _ = h.shape
        R, w = len(self.ring_sizes), self.width
        k = F.normalize(self.key(h).float().view(B, T, R, w), dim=-1)
        v = daido_features(theta0.float(), self.ring_sizes, w)                # [B, T, R, w]
        if self.freeze:
            p = torch.einsum("btrk,brkv->btrv", k, S.float())
        elif T == 1:
            beta = k.new_full((B, R), CONTROLLER_BETA)
            p, S = delta_rule_step(k[:, 0], k[:, 0].detach(), v[:, 0].detach(), beta, None,
                                   S, read="before", check_values=False)
            p = p[:, None]
        else:
            # not backprop: the write sees detached keys and targets; k learns via the read
            beta = k.new_full((B, T, R), CONTROLLER_BETA)
            p, S = delta_rule_chunked(k, k.detach(), v.detach(), beta, None, S,
                                      read="before", chunk_size=DELTA_CHUNK,
                                      check_values=False)
            # the op ties its final state to q's graph; its gradient there is zero
            S = S.detach()
        feats = torch.cat((p, v - p), -1).to(self.decoder.dtype)            # [B, T, R, 2w]
        m = torch.tanh(torch.einsum("btrf,rfm->btrm", feats, self.decoder))
        return dict(zip(MODULATIONS, m.unbind(-1))), S

    def gates(self) -> list[nn.Parameter]:
        return [self.decoder]


# ----------------------------------------------------------------------------- specialists
class RingSpecialists(nn.Module):
    """Per-ring routed mini-experts with associative stores (module docstring):
    h [B, T, D], the stores S [B, R, E, K, V] -> (extra drive [B, T, N], new S)."""

    def __init__(self, dim: int, ring_sizes: Sequence[int], experts: int, top_k: int,
                 width: int, freeze: bool):
        super().__init__()
        if not 1 <= top_k <= experts:
            raise ValueError(f"specialist_top_k must be in [1, specialist_experts={experts}]; "
                             f"got {top_k}")
        self.ring_sizes, self.experts, self.top_k = tuple(ring_sizes), experts, top_k
        self.width, self.freeze = width, freeze
        R, N = len(self.ring_sizes), sum(self.ring_sizes)
        self.router = nn.Linear(dim, R * experts, bias=False)
        self.query_key = nn.Linear(dim, 2 * R * width, bias=False)
        self.value = nn.Linear(dim, R * experts * width, bias=False)
        self.decoder = nn.Parameter(torch.zeros(N, width))
        self.register_buffer("ring_onehot", F.one_hot(ring_index(self.ring_sizes), R).T
                             .float(), persistent=False)                    # [R, N]

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.decoder)

    def init_state(self, batch_size: int, device=None) -> dict[str, torch.Tensor]:
        R, E, w = len(self.ring_sizes), self.experts, self.width
        return {"specialists": torch.zeros(batch_size, R, E, w, w, device=device)}

    def route(self, h: torch.Tensor) -> torch.Tensor:
        """h [B, T, D] -> the routing weights g [B, T, R, E] (float32): softmax over each
        ring's top-k router logits, 0 for the experts not chosen."""
        B, T, _ = h.shape
        logits = self.router(h).float().view(B, T, len(self.ring_sizes), self.experts)
        top, chosen = logits.topk(self.top_k, dim=-1)
        return torch.zeros_like(logits).scatter(-1, chosen, top.softmax(-1))

    def forward(self, h: torch.Tensor, S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = h.shape
        R, E, w = len(self.ring_sizes), self.experts, self.width
        g = self.route(h)                                                     # [B, T, R, E]
        q, k = F.normalize(self.query_key(h).float().view(B, T, 2, R, 1, w), dim=-1).unbind(2)
        # the ring's query and key serve each of its experts: heads are (ring, expert) pairs
        q = q.expand(B, T, R, E, w).reshape(B, T, R * E, w)
        k = k.expand(B, T, R, E, w).reshape(B, T, R * E, w)
        v = self.value(h).float().view(B, T, R * E, w)
        S = S.float().view(B, R * E, w, w)
        if self.freeze:
            o = torch.einsum("bthk,bhkv->bthv", q, S)
        elif T == 1:
            o, S = delta_rule_step(q[:, 0], k[:, 0], v[:, 0], g.view(B, T, R * E)[:, 0], None,
                                   S, read="after", check_values=False)
            o = o[:, None]
        else:
            # β = g: experts not chosen (g = 0) leave their stores untouched
            o, S = delta_rule_chunked(q, k, v, g.view(B, T, R * E), None, S, read="after",
                                      chunk_size=DELTA_CHUNK, check_values=False)
        y = (g[..., None] * o.view(B, T, R, E, w)).sum(3)                     # [B, T, R, w]
        # block-diagonal decoder: oscillator i reads only its own ring's output
        D = (self.decoder.T[None] * self.ring_onehot[:, None, :].to(self.decoder.dtype))
        drive = torch.tanh(y.flatten(-2).to(D.dtype) @ D.reshape(R * w, -1))  # [B, T, N]
        return drive, S.view(B, R, E, w, w)

    def gates(self) -> list[nn.Parameter]:
        return [self.decoder]


# ------------------------------------------------------------------------------- the layer
class RingTraits(nn.Module):
    """The enabled ring traits of one Positronic layer (module docstring).

    ``forward(x [B, T, D], tokens [B, T], first_position, state) -> (hooks, new state)``:
    hooks are keyword arguments for the layer's ``QuazimotoBlock`` (``phase_offset``,
    ``extra_drive``, ``modulation``, as the enabled traits need); the state is the dict of
    :meth:`init_state`, never changed in place.
    """

    def __init__(self, config: PositronicConfig, layer: int, osc: QuazimotoBlock):
        super().__init__()
        c = config
        self.enabled = tuple(t for t in RING_TRAITS if c.has(t))
        if not self.enabled:
            raise ValueError(f"RingTraits needs at least one of {RING_TRAITS} in "
                             f"config.traits; got {list(c.traits)}")
        if tuple(osc.ring_sizes) != tuple(c.ring_sizes):
            raise ValueError(f"the block's ring sizes {list(osc.ring_sizes)} differ from the "
                             f"config's {list(c.ring_sizes)}")
        self.layer, self.init_std = layer, c.init_std
        sizes, N = osc.ring_sizes, osc.num_oscillators
        self.register_buffer("ring", ring_index(sizes), persistent=False)      # [N]
        self.fractal_seed = FractalPhaseSeed(c.vocab_size, N) if c.has("fractal_seed") \
            else None
        self.interstitial = InterstitialRings(sizes, c.controller_dim, c.interstitial_window,
                                              c.ngram_buckets) \
            if c.has("interstitial") else None
        self.controllers = RingControllers(c.hidden_size, sizes, c.controller_dim,
                                           c.freeze_memories) \
            if c.has("controllers") else None
        self.specialists = RingSpecialists(c.hidden_size, sizes, c.specialist_experts,
                                           c.specialist_top_k, c.specialist_dim,
                                           c.freeze_memories) \
            if c.has("specialists") else None
        self.reset_parameters()

    def _parts(self) -> dict[str, nn.Module]:
        return {t: getattr(self, t) for t in self.enabled}

    def reset_parameters(self) -> None:
        """Called after the model's normal(0, init_std) init: every decoder to zero, so the
        traits are no-ops; the interstitial's masked projection to N(0, init_std)."""
        for name, part in self._parts().items():
            if name == "interstitial":
                part.reset_parameters(self.init_std)
            else:
                part.reset_parameters()

    def init_state(self, batch_size: int, device=None, dtype: torch.dtype = torch.float32
                   ) -> dict[str, torch.Tensor]:
        """This layer's empty per-lane state: name -> tensor, batch first, all zeros."""
        state: dict[str, torch.Tensor] = {}
        if self.interstitial is not None:
            state.update(self.interstitial.init_state(batch_size, device, dtype))
        if self.controllers is not None:
            state.update(self.controllers.init_state(batch_size, device))
        if self.specialists is not None:
            state.update(self.specialists.init_state(batch_size, device))
        return state

    def _check_state(self, state: dict[str, torch.Tensor], batch_size: int) -> None:
        want = self.init_state(batch_size, "meta")
        for name, t in want.items():
            got = state.get(name)
            if got is None:
                raise ValueError(f"layer {self.layer}: ring-trait state {name!r} is missing; "
                                 f"got {sorted(state)}")
            if got.shape != t.shape:
                raise ValueError(f"layer {self.layer}: ring-trait state {name!r} must be "
                                 f"{list(t.shape)}; got {list(got.shape)}")

    def forward(self, h: torch.Tensor, theta0: torch.Tensor, tokens: torch.Tensor,
                first_position: int, state: dict[str, torch.Tensor]
                ) -> tuple[dict[str, object], dict[str, torch.Tensor]]:
        """h [B, T, D] = osc.norm(x), the block's normed input; θ⁰ [B, T, N] its initial
        phases (``osc.initial_conditions(h)[0]``, computed once by the caller for both the
        traits and the block); tokens [B, T]; first_position (the absolute position of
        tokens[:, 0]) is unused: the traits are position-free."""
        B, T, _ = h.shape
        if tokens.shape != (B, T):
            raise ValueError(f"tokens must be [B, T] = [{B}, {T}]; got {list(tokens.shape)}")
        self._check_state(state, B)
        theta0 = theta0.float()                                             # [B, T, N]
        hooks: dict[str, object] = {}
        new: dict[str, torch.Tensor] = {}
        drive = None
        if self.fractal_seed is not None:
            hooks["phase_offset"] = self.fractal_seed(tokens)
        if self.interstitial is not None:
            part = {k: state[k] for k in ("prev_tokens", "window_keys", "window_values",
                                          "window_valid")}
            ring_drive, more = self.interstitial(theta0, tokens, part)
            new.update(more)
            drive = ring_drive[..., self.ring]                              # [B, T, N]
        if self.controllers is not None:
            hooks["modulation"], new["controller"] = self.controllers(h, theta0,
                                                                      state["controller"])
        if self.specialists is not None:
            d, new["specialists"] = self.specialists(h, state["specialists"])
            drive = d if drive is None else drive + d
        if drive is not None:
            hooks["extra_drive"] = drive
        return hooks, new

    def component_gates(self) -> dict[str, list[nn.Parameter]]:
        """Per enabled trait, the zero-initialised parameters whose zeroing removes exactly
        that trait's contribution (its decoders)."""
        return {name: part.gates() for name, part in self._parts().items()}


__all__ = [
    "FractalPhaseSeed", "InterstitialRings", "RingControllers", "RingSpecialists",
    "RingTraits", "daido_features", "mandelbrot_features", "ngram_bucket", "radical_inverse",
    "window_attention",
]
