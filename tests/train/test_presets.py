"""Named presets: each fills in a valid model config and trainer settings."""

from __future__ import annotations

import pytest

from assoclm.models import model_classes
from assoclm.train.cli import configs_from_flags
from assoclm.train.presets import PRESETS, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_valid_configs(name):
    _, families, _ = PRESETS[name]
    for family in families:
        model_cfg, config = configs_from_flags({"preset": name, "model": family})
        config_cls, _ = model_classes(family)
        config_cls(**{**model_cfg, "vocab_size": 512})  # validates itself
        assert config.preset == name


def test_recall_preset_writes_strongly_and_weights_answers():
    model_cfg, config = configs_from_flags({"preset": "recall", "dataset_mode": "duplex_chat"})
    # β up to 1 and no forgetting: the text presets' 0.1 / 0.02 never left chance on recall.
    assert (model_cfg["write_rate"], model_cfg["forget_rate"]) == (1.0, 0.0)
    assert model_cfg["conv_size"] == 4
    assert model_cfg["memory_key_size"] == model_cfg["hidden_size"] == 128
    assert config.answer_weight == 5.0 and config.unroll_len == 256
    # a flag given on the command line still wins over the preset
    _, config = configs_from_flags({"preset": "recall", "answer_weight": 1.0})
    assert config.answer_weight == 1.0


def test_recall_preset_is_for_the_propagator_only():
    with pytest.raises(ValueError, match="preset 'recall' has no 'transformer' model"):
        get_preset("recall", "transformer")


def test_a_step_or_token_limit_replaces_the_preset_clock():
    _, config = configs_from_flags({"preset": "demo", "max_steps": 40})
    assert config.max_steps == 40 and config.time_budget is None
    _, config = configs_from_flags({"preset": "demo", "max_tokens": 1000})
    assert config.max_tokens == 1000 and config.time_budget is None
    _, config = configs_from_flags({"preset": "demo", "max_steps": 40, "time_budget": 60.0})
    assert config.max_steps == 40 and config.time_budget == 60.0
    _, config = configs_from_flags({"preset": "demo"})
    assert config.time_budget == 300.0
