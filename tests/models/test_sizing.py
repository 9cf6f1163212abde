"""Sizing models to a parameter count: exact counts, closest width, matched families."""

from __future__ import annotations

import pytest

from assoclm.models import build_model
from assoclm.models.sizing import count_parameters, matched_configs, size_to_params

SMALL = {"vocab_size": 64, "num_layers": 2, "memory_key_size": 16, "memory_value_size": 16}


def test_count_parameters_equals_the_built_model():
    for name, cfg in [("propagator", {**SMALL, "hidden_size": 40}),
                      ("hebbian", {**SMALL, "hidden_size": 40}),
                      ("transformer", {"vocab_size": 64, "hidden_size": 32, "num_layers": 2,
                                       "num_heads": 2})]:
        model = build_model(name, cfg)
        assert count_parameters(name, cfg) == sum(p.numel() for p in model.parameters())


def test_size_to_params_finds_the_closest_width():
    target = count_parameters("propagator", {**SMALL, "hidden_size": 48})
    cfg = size_to_params("propagator", SMALL, target + 10)
    assert cfg["hidden_size"] == 48
    # every other multiple of 8 is farther from the target
    for width in (40, 56):
        other = count_parameters("propagator", {**SMALL, "hidden_size": width})
        assert abs(other - target - 10) > 10


def test_size_to_params_respects_head_divisibility():
    cfg = size_to_params("transformer", {"vocab_size": 64, "num_layers": 2, "num_heads": 3},
                         50_000)
    assert cfg["hidden_size"] % 6 == 0
    assert abs(count_parameters("transformer", cfg) - 50_000) / 50_000 < 0.1


def test_size_to_params_says_when_the_target_is_out_of_reach():
    with pytest.raises(ValueError, match="within 25%"):
        size_to_params("propagator", SMALL, 100, high=64)
    with pytest.raises(ValueError, match="positive"):
        size_to_params("propagator", SMALL, 0)


@pytest.mark.parametrize("width", [32, 64, 128])
def test_matched_configs_have_equal_parameters(width):
    configs = matched_configs(width, 2, 256, 128)
    counts = {name: count_parameters(name, cfg) for name, cfg in configs.items()}
    assert counts["propagator"] == counts["hebbian"]
    assert abs(counts["transformer"] / counts["propagator"] - 1) < 0.05, counts
    assert configs["hebbian"]["hidden_size"] == width
    with pytest.raises(ValueError, match="unknown model"):
        matched_configs(width, 2, 256, 128, models=("propagator", "mamba"))
