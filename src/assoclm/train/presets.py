"""Named presets: a model config and trainer settings that go together.

A preset only fills in values; any flag given on the command line wins over it.
"""

from __future__ import annotations

from typing import Any

# name -> (description, model config overrides, TrainConfig overrides)
PRESETS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "seed": (
        "the Propagator seed's model: 512 wide, 8 layers, K=128, V=256 (about 22M parameters)",
        {"hidden_size": 512, "num_layers": 8, "memory_key_size": 128, "memory_value_size": 256},
        {"batch_size": 16, "unroll_len": 256, "learning_rate": 6e-4, "warmup_steps": 200},
    ),
    "demo": (
        "a 3.6M-parameter Propagator that learns Shakespeare in 5 minutes on 2 CPU cores",
        {"hidden_size": 256, "num_layers": 4, "memory_key_size": 64, "memory_value_size": 128,
         "chunk_size": 32},
        {"batch_size": 16, "unroll_len": 128, "learning_rate": 2e-3,
         "warmup_steps": 50, "time_budget": 300.0, "eval_every": 150, "eval_tokens": 16384},
    ),
    "tiny": (
        "a toy model for tests and smoke runs (seconds on a CPU)",
        {"hidden_size": 32, "num_layers": 2, "memory_key_size": 16, "memory_value_size": 16,
         "chunk_size": 16},
        {"tokenizer": "byte", "batch_size": 4, "unroll_len": 32, "learning_rate": 3e-3,
         "warmup_steps": 5, "eval_every": 10, "eval_tokens": 2048},
    ),
}


def get_preset(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model overrides, trainer overrides) of a named preset."""
    try:
        _, model, train = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}") from None
    return dict(model), dict(train)
