"""Pure tensor functions (no nn.Module). Every fast op has a naive reference beside it."""

from assoclm.ops.delta_rule import delta_rule_chunked, delta_rule_recurrent, delta_rule_step

__all__ = ["delta_rule_chunked", "delta_rule_recurrent", "delta_rule_step"]
