"""Named presets: each fills in a valid model config and trainer settings."""

from __future__ import annotations

import pytest

from assoclm.cli.train import configs_from_flags
from assoclm.models import model_spec
from assoclm.models.sizing import count_parameters
from assoclm.train.presets import PRESETS, get_preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_valid_configs(name):
    _, families, _ = PRESETS[name]
    for family in families:
        model_cfg, config, _ = configs_from_flags({"preset": name, "model": family})
        model_spec(family).config(**{**model_cfg, "vocab_size": 512})  # validates itself
        assert config.preset == name


def test_recall_preset_writes_strongly_and_weights_answers():
    model_cfg, config, task = configs_from_flags({"preset": "recall",
                                                  "dataset_mode": "duplex_chat"})
    # β up to 1 and no forgetting: the text presets' 0.1 / 0.02 never left chance on recall.
    assert (model_cfg["write_rate"], model_cfg["forget_rate"]) == (1.0, 0.0)
    assert model_cfg["conv_size"] == 4
    assert model_cfg["memory_key_size"] == model_cfg["hidden_size"] == 128
    assert task.settings.answer_weight == 5.0 and config.unroll_len == 256
    # a flag given on the command line still wins over the preset
    _, _, task = configs_from_flags({"preset": "recall", "dataset_mode": "duplex_chat",
                                     "answer_weight": 1.0})
    assert task.settings.answer_weight == 1.0


def test_recall_preset_is_for_the_propagator_only():
    with pytest.raises(ValueError, match="preset 'recall' has no 'transformer' model"):
        get_preset("recall", "transformer")


def test_a_step_or_token_limit_replaces_the_preset_clock():
    _, config, _ = configs_from_flags({"preset": "demo", "max_steps": 40})
    assert config.max_steps == 40 and config.time_budget is None
    _, config, _ = configs_from_flags({"preset": "demo", "max_tokens": 1000})
    assert config.max_tokens == 1000 and config.time_budget is None
    _, config, _ = configs_from_flags({"preset": "demo", "max_steps": 40, "time_budget": 60.0})
    assert config.max_steps == 40 and config.time_budget == 60.0
    _, config, _ = configs_from_flags({"preset": "demo"})
    assert config.time_budget == 300.0


def test_presets_size_the_families_alike():
    for name, (_, families, train) in PRESETS.items():
        vocab = 269 if train.get("tokenizer") == "byte" else 4096
        counts = {family: count_parameters(family, {**get_preset(name, family)[0],
                                                    "vocab_size": vocab})
                  for family in families}
        if "hebbian" in counts:  # the recall preset is for the Propagator only
            assert counts["propagator"] == counts["hebbian"]
        for family in ("transformer", "positronic"):
            if family in counts:
                assert abs(counts[family] / counts["propagator"] - 1) < 0.05, (name, counts)
