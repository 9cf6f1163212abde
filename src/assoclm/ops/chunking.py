"""What the chunk-parallel matrix-memory ops share: the chunk layout and in-chunk decays.

Both the delta rule and linear attention cut the sequence into chunks of C tokens (padded at
the end), work on every chunk at once with matrix products, and weigh token pairs inside a
chunk by their cumulative retention exp(b_i − b_j).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Chunks:
    """The layout of a [B, T, H, ...] sequence as N chunks of C tokens.

    C is ``chunk_size``, or the next power of two ≥ T for shorter sequences; the last chunk
    is zero-padded. Padded steps must have β = 0 and α = 1 so that they leave the state
    untouched (zero padding gives β = 0; a padded log-decay of 0 gives α = 1).
    """

    def __init__(self, B: int, T: int, H: int, chunk_size: int):
        self.B, self.T, self.H = B, T, H
        self.C = min(chunk_size, 1 << (T - 1).bit_length())
        self.pad = (-T) % self.C
        self.N = (T + self.pad) // self.C

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H, ...) -> chunk-major (N, B·H, C, ...), float32, zero-padded in time.

        Contiguous, so that each chunk is one block and batched matmuls see one batch
        dimension (CPU bmm on strided batches falls back to a matrix-by-matrix loop).
        """
        B, H, C, N = self.B, self.H, self.C, self.N
        x = x.float()
        if self.pad:
            x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, 0, 0, self.pad))
        x = x.view(B, N, C, H, *x.shape[3:]).transpose(2, 3).transpose(0, 1)
        return x.reshape(N, B * H, C, *x.shape[4:])

    def merge(self, o: torch.Tensor) -> torch.Tensor:
        """(N, B·H, C, V) -> (B, T, H, V), the padding dropped."""
        B, H, C, N = self.B, self.H, self.C, self.N
        V = o.shape[-1]
        return o.view(N, B, H, C, V).permute(1, 0, 3, 2, 4).reshape(B, N * C, H, V)[:, :self.T]

    def log_retention(self, decay: torch.Tensor | None, like: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cumulative log-retention inside each chunk, (b, b_prev), each (N, B·H, C) float64:
        b_r = Σ_{i≤r} log α_i, and b_prev excludes r. ``like`` (N, B·H, C) gives the shape
        when decay is None (α ≡ 1).

        Kept in float64: the gradient of log α sums row and column terms of exp(b_i − b_j)
        that nearly cancel, and dα = d(log α)/α magnifies what is left by up to 1/α.
        """
        log_a = torch.zeros_like(like) if decay is None else self.split(decay.float().log())
        log_a = log_a.double()
        b = log_a.cumsum(-1)
        return b, b - log_a


def segment_decay(row: torch.Tensor, col: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """exp(row_i − col_j) where mask[i, j], else 0; [..., C] x [..., C] -> [..., C, C].

    Masked entries are filled before exp so that large positive differences above the
    diagonal never make inf (and NaN gradients).
    """
    diff = row[..., :, None] - col[..., None, :]
    return diff.masked_fill(~mask, float("-inf")).exp().float()
