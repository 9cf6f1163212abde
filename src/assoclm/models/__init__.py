"""Models: one file each, a <Name>Config dataclass and a <Name>LM module."""

from assoclm.models.propagator import PropagatorConfig, PropagatorLM
from assoclm.models.state import MemoryState

__all__ = ["MemoryState", "PropagatorConfig", "PropagatorLM"]
