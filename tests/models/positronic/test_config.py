"""PositronicConfig: validation of bad values, and defaults that describe the model card."""

from __future__ import annotations

import pytest

from assoclm.models import build_model
from assoclm.models.positronic import PositronicConfig


def test_config_validates():
    with pytest.raises(ValueError, match="num_kv_heads"):
        PositronicConfig(num_heads=8, num_kv_heads=3)
    with pytest.raises(ValueError, match="rope_fraction"):
        PositronicConfig(hidden_size=48, num_heads=8, rope_fraction=0.5)   # 3 channels
    with pytest.raises(ValueError, match="traits"):
        PositronicConfig(traits=("wings",))
    with pytest.raises(ValueError, match="ring_sizes"):
        PositronicConfig(ring_sizes=(4, -1))
    with pytest.raises(ValueError, match="unknown key"):
        PositronicConfig.from_dict({"hidden": 3})
    c = PositronicConfig.from_dict(PositronicConfig(ring_sizes=[2, 4]).to_dict())
    assert c.ring_sizes == (2, 4) and c.num_oscillators == 6


def test_defaults_describe_the_model_card():
    c = PositronicConfig()
    assert c.ring_sizes == (4, 8, 16, 32, 64, 128, 256) and c.num_oscillators == 508
    assert (c.osc_steps, c.osc_dt, c.mtp_heads, c.z_loss) == (4, 0.5, 4, 1e-4)
    model = build_model("positronic", {"vocab_size": 300, "num_layers": 1})
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.endswith("bias") for n in names)
    assert "logit_scale" in names
