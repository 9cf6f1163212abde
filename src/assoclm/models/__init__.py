"""Models: one file or package each, a <Name>Config dataclass and a <Name>LM module.

:data:`MODELS` (``assoclm.models.registry``) maps the name used on the command line and in
``config.json`` (``"model_type"``) to a :class:`ModelSpec`: the config and module classes
and the declared capabilities, so the trainer and the checkpoint loader build any model the
same way. The contracts every model and state keep are ``assoclm.models.protocols``.
"""

from assoclm.models.eam import EAMConfig, EAMModel
from assoclm.models.positronic import PositronicConfig, PositronicLM, PositronicState
from assoclm.models.propagator import HebbianConfig, PropagatorConfig, PropagatorLM
from assoclm.models.recurrent_depth import RecurrentDepthConfig, RecurrentDepthLM
from assoclm.models.registry import MODELS, ModelSpec, build_model, capabilities, model_spec
from assoclm.models.state import MemoryState
from assoclm.models.transformer import TransformerConfig, TransformerLM

__all__ = ["MODELS", "EAMConfig", "EAMModel", "HebbianConfig", "MemoryState", "ModelSpec",
           "PositronicConfig", "PositronicLM", "PositronicState", "PropagatorConfig",
           "PropagatorLM", "RecurrentDepthConfig", "RecurrentDepthLM", "TransformerConfig",
           "TransformerLM", "build_model", "capabilities", "model_spec"]
