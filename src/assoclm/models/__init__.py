"""Models: one file each, a <Name>Config dataclass and a <Name>LM module.

``MODELS`` maps the name used on the command line and in ``config.json`` (``"model_type"``)
to the config and module classes, so the trainer and checkpoint loader build any model the
same way.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from assoclm.config import Config
from assoclm.models.kv_cache import KVCacheState
from assoclm.models.positronic import PositronicConfig, PositronicLM, PositronicState
from assoclm.models.propagator import HebbianConfig, PropagatorConfig, PropagatorLM
from assoclm.models.recurrent_depth import RecurrentDepthConfig, RecurrentDepthLM
from assoclm.models.state import MemoryState
from assoclm.models.transformer import TransformerConfig, TransformerLM

MODELS: dict[str, tuple[type[Config], type[nn.Module]]] = {
    "propagator": (PropagatorConfig, PropagatorLM),
    # the same block with additive (linear-attention) writes: the error-correction ablation
    "hebbian": (HebbianConfig, PropagatorLM),
    # the baseline: RoPE, SwiGLU, causal SDPA; its state is a KV cache
    "transformer": (TransformerConfig, TransformerLM),
    # attention plus Kuramoto-oscillator channel mixers (QuazimotoBlock), MTP draft heads
    "positronic": (PositronicConfig, PositronicLM),
    # one weight-tied block iterated a depth chosen at test time (Geiping et al. 2025)
    "recurrent_depth": (RecurrentDepthConfig, RecurrentDepthLM),
}


def model_classes(name: str) -> tuple[type[Config], type[nn.Module]]:
    """(ConfigClass, ModelClass) for a registered model name."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}") from None


def build_model(name: str, config: dict[str, Any] | Config) -> nn.Module:
    """A freshly initialised model from its name and config (a dict or the config object)."""
    config_cls, model_cls = model_classes(name)
    if not isinstance(config, config_cls):
        config = config_cls.from_dict(dict(config))
    return model_cls(config)


__all__ = ["MODELS", "HebbianConfig", "KVCacheState", "MemoryState", "PositronicConfig",
           "PositronicLM", "PositronicState", "PropagatorConfig",
           "PropagatorLM", "RecurrentDepthConfig", "RecurrentDepthLM", "TransformerConfig",
           "TransformerLM", "build_model", "model_classes"]
