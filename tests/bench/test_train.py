"""The training-throughput benchmark, its table and its target."""

from __future__ import annotations

import json
import statistics

import pytest

from assoclm.bench import train


def test_quick_train_benchmark_writes_consistent_results(tmp_path, capsys):
    out = tmp_path / "train.json"
    train.main(["--quick", "--out", str(out)])
    result = json.loads(out.read_text())
    assert (tmp_path / "train.png").stat().st_size > 1000
    assert result["suite"] == "train" and result["config"]["quick"] is True
    assert "assoclm.bench.train" in result["provenance"]["command"]
    rows = {r["write_from"]: r for r in result["rows"]}
    assert set(rows) == {"input", "output"}
    n_tokens = result["config"]["batch"] * result["config"]["seq_len"]
    for row in rows.values():
        assert row["median_s"] == statistics.median(row["times_s"])
        assert row["tokens_per_s"] == pytest.approx(n_tokens / row["median_s"])
    assert result["ratio_input_over_output"] == pytest.approx(
        rows["input"]["tokens_per_s"] / rows["output"]["tokens_per_s"])
    assert result["target"] is None  # targets are judged on the demo model at T=512 only
    table = train.render(result)
    assert f"{rows['input']['tokens_per_s']:,.0f}" in table
    assert "parallel" in capsys.readouterr().out


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.main(["--batch", "0"])
    assert "--batch must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--preset", "huge"])
    assert "unknown preset 'huge'" in capsys.readouterr().err


def test_the_target_is_stated_only_where_it_was_judged():
    result = {"config": {"preset": "demo", "seq_len": 512}, "ratio_input_over_output": 16.69,
              "target": {"ratio": ">= 10", "met": True}}
    (row,) = train.stated_targets(result)
    assert row == {"name": "training step, parallel / per-token writes (demo preset, T=512)",
                   "goal": ">= 10", "measured": 16.69, "met": True}
    assert train.stated_targets({**result, "target": None}) == []
