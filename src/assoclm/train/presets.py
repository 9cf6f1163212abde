"""Named presets: model configs and trainer settings that go together.

A preset only fills in values; any flag given on the command line wins over it. A preset has
a model config for each model family it supports, sized so that the families have about the
same number of parameters (``tests/train/test_presets.py`` holds them to 5%): ``--model
transformer --preset demo`` is the baseline the ``demo`` Propagator is compared with.
"""

from __future__ import annotations

from typing import Any

# The Propagator block with additive writes has exactly the Propagator's parameters.
_DEMO = {"hidden_size": 256, "num_layers": 4, "memory_key_size": 64, "memory_value_size": 128,
         "chunk_size": 32}
_TINY = {"hidden_size": 32, "num_layers": 2, "memory_key_size": 16, "memory_value_size": 16,
         "chunk_size": 16}
_SEED = {"hidden_size": 512, "num_layers": 8, "memory_key_size": 128, "memory_value_size": 256}
# Recall needs strong, lasting writes (β up to 1, no forgetting within a session), keys as
# wide as the model and a short convolution; a small model takes many more steps per minute.
_RECALL = {"hidden_size": 128, "num_layers": 2, "memory_key_size": 128,
           "memory_value_size": 128, "mlp_multiplier": 2.0, "write_rate": 1.0,
           "forget_rate": 0.0, "conv_size": 4, "chunk_size": 32}

# Positronic at the Propagator's width and depth: fewer oscillator rings than the 768-wide
# original (its 508 oscillators would triple the parameters here), low-rank q/out projections.
_POSITRONIC_DEMO = {"hidden_size": 256, "num_layers": 4, "num_heads": 8, "num_kv_heads": 4,
                    "attn_rank": 96, "osc_expansion": 2.5, "ring_sizes": [4, 8, 16, 32, 64],
                    "max_context": 512}
_POSITRONIC_TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1,
                    "attn_rank": 16, "ring_sizes": [4, 8, 16], "mtp_heads": 2,
                    "max_context": 64}

# name -> (description, {model family: model config overrides}, TrainConfig overrides)
PRESETS: dict[str, tuple[str, dict[str, dict[str, Any]], dict[str, Any]]] = {
    "seed": (
        "the Propagator seed's model: 512 wide, 8 layers, K=128, V=256 (about 22M parameters)",
        {"propagator": _SEED, "hebbian": _SEED,
         "transformer": {"hidden_size": 464, "num_layers": 8, "num_heads": 8}},
        {"batch_size": 16, "unroll_len": 256, "learning_rate": 6e-4, "warmup_steps": 200},
    ),
    "demo": (
        "a 3.6M-parameter Propagator that learns Shakespeare in 5 minutes on 2 CPU cores",
        {"propagator": _DEMO, "hebbian": _DEMO,
         "transformer": {"hidden_size": 232, "num_layers": 4, "num_heads": 4,
                         "max_context": 512},
         "positronic": _POSITRONIC_DEMO},
        {"batch_size": 16, "unroll_len": 128, "learning_rate": 2e-3,
         "warmup_steps": 50, "time_budget": 300.0, "eval_every": 150, "eval_tokens": 16384},
    ),
    "recall": (
        "a 0.7M-parameter Propagator for duplex_chat that learns to recall updated facts of "
        "memory dialogues on a CPU (K=V=128, write rate 1, no forgetting, conv 4)",
        {"propagator": _RECALL},
        {"batch_size": 16, "unroll_len": 256, "learning_rate": 3e-3, "warmup_steps": 50,
         "time_budget": 900.0, "eval_every": 500, "eval_tokens": 16384,
         "answer_weight": 5.0},
    ),
    "tiny": (
        "a toy model for tests and smoke runs (seconds on a CPU)",
        {"propagator": _TINY, "hebbian": _TINY,
         "transformer": {"hidden_size": 30, "num_layers": 2, "num_heads": 1,
                         "max_context": 64},
         "positronic": _POSITRONIC_TINY},
        {"tokenizer": "byte", "batch_size": 4, "unroll_len": 32, "learning_rate": 3e-3,
         "warmup_steps": 5, "eval_every": 10, "eval_tokens": 2048},
    ),
}


def get_preset(name: str, model: str = "propagator") -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config overrides, trainer overrides) of a named preset for a model family."""
    try:
        _, models, train = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}") from None
    if model not in models:
        raise ValueError(f"preset {name!r} has no {model!r} model; it has: {sorted(models)}")
    return dict(models[model]), dict(train)
