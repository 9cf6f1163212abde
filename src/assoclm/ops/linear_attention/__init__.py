"""Linear attention with gates: the Propagator memory with additive (Hebbian) writes.

    S_t = α_t · S_{t−1} + β_t · k_t v_tᵀ
    read "after":  o_t = S_tᵀ q_t        read "before": o_t = S_{t−1}ᵀ q_t

Katharopoulos et al. 2020, "Transformers are RNNs" (arXiv 2006.16236), with a write
strength and a retention gate and without the normaliser. Same shapes and arguments as
`assoclm.ops.delta_rule`; derivation of the chunked form in README.md beside this file.
"""

from assoclm.ops.linear_attention.chunk import linear_attention_chunked
from assoclm.ops.linear_attention.naive import linear_attention_recurrent
from assoclm.ops.linear_attention.step import linear_attention_step, linear_attention_write

__all__ = [
    "linear_attention_chunked", "linear_attention_recurrent", "linear_attention_step",
    "linear_attention_write",
]
