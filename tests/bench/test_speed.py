"""`assoclm bench train-speed` on its --quick settings, and its table."""

from __future__ import annotations

import json

import pytest

from assoclm.bench import speed


def _load(path):
    return json.loads(path.read_text())


def test_train_speed_quick_ratios_are_against_the_transformer(tmp_path):
    out = tmp_path / "speed.json"
    speed.main(["--quick", "--seq-lens", "16,32", "--repeats", "3", "--out", str(out)])
    result = _load(out)
    assert result["config"]["repeats"] == 3  # a flag given wins over --quick's value
    assert [r["seq_len"] for r in result["rows"]] == [16, 32]
    for r in result["rows"]:
        assert r["vs_transformer"]["transformer"] == 1.0
        for label, tps in r["tokens_per_s"].items():
            assert tps == pytest.approx(result["config"]["batch"] * r["seq_len"]
                                        / r["median_s"][label])
            assert r["vs_transformer"][label] == pytest.approx(
                tps / r["tokens_per_s"]["transformer"])
    models = result["config"]["models"]
    assert models["transformer"]["config"]["max_context"] >= 32
    table = speed.render(result)
    row = result["rows"][1]
    cells = [f"{row['tokens_per_s'][x]:,.0f}" for x in models]
    cells += [f"{row['vs_transformer'][x]:.2f}×" for x in models if x != "transformer"]
    assert f"| 32 | {' | '.join(cells)} |" in table
    assert speed.stated_targets(result) == []
