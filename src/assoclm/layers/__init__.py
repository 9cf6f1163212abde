"""nn.Modules shared by the models."""

from assoclm.layers.mlp import MLP

__all__ = ["MLP"]
