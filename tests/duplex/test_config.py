"""The duplex task's settings: they validate themselves, and read back from a saved run."""

from __future__ import annotations

import math

import pytest

from assoclm.checkpoint import save_checkpoint
from assoclm.duplex.config import DuplexConfig, run_end_margin, settings_from_run
from tests.duplex.test_session import TOK, tiny_model


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="p_interrupt must be a number in"):
        DuplexConfig(p_interrupt=1.5)
    with pytest.raises(ValueError, match="answer_weight must be a number in"):
        DuplexConfig(answer_weight=-1.0)
    with pytest.raises(ValueError, match="memory_dialogues must be an integer >= 1"):
        DuplexConfig(memory_dialogues=0)
    with pytest.raises(ValueError, match="memory_options: unknown memory option 'facts'"):
        DuplexConfig(memory_options="facts=2")
    with pytest.raises(ValueError, match="eval_probes must be an integer >= 1"):
        DuplexConfig(eval_probes=0)


def test_settings_are_read_from_a_runs_flat_config_and_give_the_margin(tmp_path):
    flat = {"batch_size": 8, "dataset_mode": "duplex_chat", "listen_weight": 0.1,
            "answer_weight": 5.0}
    settings = settings_from_run(flat)
    assert (settings.listen_weight, settings.answer_weight) == (0.1, 5.0)
    assert settings.end_margin == pytest.approx(math.log(10))
    # a run saved without trainer state says nothing about its weights: no margin
    save_checkpoint(tmp_path, 0, tiny_model(), "propagator", TOK)
    assert run_end_margin(tmp_path / "checkpoints" / "step-0000000") == 0.0
