"""The delta-rule memory update (Propagator's memory); derivation in README.md beside this file.

    S_t = α_t · S_{t−1} + β_t · k_t (v_t − S_{t−1}ᵀ k_t)ᵀ
    read "after":  o_t = S_tᵀ q_t        read "before": o_t = S_{t−1}ᵀ q_t
"""

from assoclm.ops.delta_rule.chunk import delta_rule_chunked
from assoclm.ops.delta_rule.naive import delta_rule_recurrent
from assoclm.ops.delta_rule.step import delta_rule_step, delta_rule_write
from assoclm.ops.delta_rule.validate import READ_MODES

__all__ = [
    "READ_MODES", "delta_rule_chunked", "delta_rule_recurrent", "delta_rule_step",
    "delta_rule_write",
]
