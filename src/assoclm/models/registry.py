"""The model registry: every model by the name used on the command line and in a
checkpoint's ``config.json`` (``"model_type"``).

A :class:`ModelSpec` holds the config class, the module class and a one-line description.
What a model can do beyond ``nn.Module`` its class declares in ``capabilities``
(``assoclm.models.protocols``); the trainer, the generator and the CLI read that declaration,
never ``hasattr``. A new model is a new file and one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from assoclm.config import Config
from assoclm.models.eam import EAMConfig, EAMModel
from assoclm.models.positronic import PositronicConfig, PositronicLM
from assoclm.models.propagator import HebbianConfig, PropagatorConfig, PropagatorLM
from assoclm.models.protocols import CAPABILITIES
from assoclm.models.recurrent_depth import RecurrentDepthConfig, RecurrentDepthLM
from assoclm.models.transformer import TransformerConfig, TransformerLM


def capabilities_of(model_cls: type) -> frozenset[str]:
    """The capabilities a model class declares in its ``capabilities`` class attribute
    (inherited like any attribute; none for a class that declares nothing)."""
    return frozenset(getattr(model_cls, "capabilities", frozenset()))


@dataclass(frozen=True)
class ModelSpec:
    """One registered model.

    Attributes:
        config: its config dataclass (validates itself, saved in every checkpoint).
        model: its ``nn.Module`` class, built as ``model(config)``.
        description: one line for ``--help``.
    """

    config: type[Config]
    model: type[nn.Module]
    description: str

    def __post_init__(self) -> None:
        unknown = sorted(self.capabilities - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"{self.model.__name__} declares unknown capabilities {unknown}; "
                             f"known: {CAPABILITIES}")

    @property
    def capabilities(self) -> frozenset[str]:
        """What the model class declares it offers (``assoclm.models.protocols``)."""
        return capabilities_of(self.model)


MODELS: dict[str, ModelSpec] = {
    "propagator": ModelSpec(
        PropagatorConfig, PropagatorLM,
        "delta-rule matrix memory, constant state per sequence (the default)"),
    # the same block with additive (linear-attention) writes: the error-correction ablation
    "hebbian": ModelSpec(
        HebbianConfig, PropagatorLM,
        "the Propagator block with additive (linear-attention) writes"),
    # the baseline: RoPE, SwiGLU, causal SDPA; its state is a KV cache
    "transformer": ModelSpec(
        TransformerConfig, TransformerLM,
        "the baseline Transformer (RoPE, SwiGLU, KV cache)"),
    # attention plus Kuramoto-oscillator channel mixers (QuazimotoBlock), MTP draft heads
    "positronic": ModelSpec(
        PositronicConfig, PositronicLM,
        "attention with Kuramoto-oscillator MLPs, optional traits and draft heads"),
    # one weight-tied block iterated a depth chosen at test time (Geiping et al. 2025)
    "recurrent_depth": ModelSpec(
        RecurrentDepthConfig, RecurrentDepthLM,
        "one weight-tied block iterated to a depth chosen at test time"),
    # the equilibrium Hopfield model, a masked denoiser decoded in parallel (MaskGIT)
    "eam": ModelSpec(
        EAMConfig, EAMModel,
        "equilibrium associative memory: a masked denoiser solved to its fixed point"),
}


def model_spec(name: str) -> ModelSpec:
    """The registry entry of a model name.

    Raises:
        ValueError: an unknown name; the message lists the registered ones.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}") from None


def build_model(name: str, config: dict[str, Any] | Config) -> nn.Module:
    """A freshly initialised model from its name and config (a dict or the config object)."""
    spec = model_spec(name)
    if not isinstance(config, spec.config):
        config = spec.config.from_dict(dict(config))
    return spec.model(config)


def capabilities(model: nn.Module) -> frozenset[str]:
    """The capabilities a model declares through its class (``assoclm.models.protocols``)."""
    return capabilities_of(type(model))
