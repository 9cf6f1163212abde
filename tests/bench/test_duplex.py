"""`assoclm bench duplex`: the protocol metrics of each family, trained and scored alike."""

from __future__ import annotations

import json

import pytest

from assoclm.bench import duplex, report


def test_duplex_quick_trains_and_scores_each_family(tmp_path):
    rows = tmp_path / "rows.jsonl"  # a local dialogue file beside the synthetic memory ones
    rows.write_text("".join(json.dumps({"output": [
        {"role": "user", "content": f"hello number {i}."},
        {"role": "assistant", "content": f"hi, you said {i}."}]}) + "\n" for i in range(40)))
    out = tmp_path / "duplex.json"
    result = duplex.main(["--quick", "--models", "propagator,transformer", "--out", str(out),
                          "--mix", f"{rows}:1,memory:1", "--runs", str(tmp_path / "runs"),
                          "--no-progress", "--no-verbose"])
    saved = json.loads(out.read_text())
    assert saved["suite"] == "duplex" and (tmp_path / "duplex.png").stat().st_size > 0
    assert [r["model"] for r in saved["rows"]] == ["propagator", "transformer"]
    assert saved["config"]["mix"] == f"{rows}:1,memory:1"
    for row in saved["rows"]:
        assert row["tokens"] >= 2048 and row["held_out_dialogues"] > 0
        assert row["protocol"]["decision_accuracy"]["total"] > 0
        assert row["memory_recall"]["memory_recall"]["total"] == 4  # --quick asks 4
        values = row["metrics"]
        assert values["decision_accuracy"] == row["protocol"]["decision_accuracy"]["value"]
        for key, _, _ in duplex.METRICS:
            assert values[key] is None or 0.0 <= values[key] <= 1.0
    assert saved["targets"] == []  # not judged on quick settings
    assert result["rows"][0]["metrics"] == saved["rows"][0]["metrics"]


def _row(model, decision, recall_updated):
    metrics = {key: 0.5 for key, _, _ in duplex.METRICS}
    metrics.update(decision_accuracy=decision, memory_recall_updated=recall_updated,
                   model_bpb=1.25)
    return {"model": model, "parameters": 3_600_000, "metrics": metrics,
            "held_out_dialogues": 7, "end_margin": 2.5}


def test_duplex_targets_are_judged_on_the_propagator_row():
    goals = {"decision_accuracy": 0.99, "memory_recall_updated": 0.95}
    rows = [_row("transformer", 1.0, 1.0), _row("propagator", 0.991, 0.5)]
    got = {t["name"]: t for t in duplex.targets(rows, goals)}
    assert got["propagator duplex decision accuracy"]["met"] is True
    assert got["propagator duplex memory recall updated"]["met"] is False
    assert got["propagator duplex memory recall updated"]["measured"] == 0.5
    assert duplex.targets([_row("transformer", 1.0, 1.0)], goals) == []


def test_duplex_renderer_shows_the_files_numbers(tmp_path):
    prov = {"command": "python -m assoclm.cli bench duplex", "git_commit": "abc" * 14,
            "machine": {"device": "cpu", "cpu": "test cpu", "torch_threads": 2, "torch": "2"}}
    rows = [_row("propagator", 0.9876, 0.25), _row("transformer", 0.5, 0.125)]
    result = {"suite": "duplex", "provenance": prov, "rows": rows,
              "goals": {"decision_accuracy": 0.99},
              "config": {"preset": "demo", "tokens": 1000, "mix": "default", "conv_size": 4,
                         "probes": 10},
              "targets": duplex.targets(rows, {"decision_accuracy": 0.99})}
    (tmp_path / "duplex-x.json").write_text(json.dumps(result))
    text = report.render("duplex-x", tmp_path)
    assert "| decision | 98.8% | 50.0% | ≥ 99.0% |" in text
    assert "| recall, updated facts | 25.0% | 12.5% |" in text
    assert "size 4" in text and "**not met**" in text
    assert "7 held-out dialogues" in text and "by more than 2.50 nats" in text
    assert duplex.stated_targets(result) == result["targets"]
    assert "earlier rule" not in text
    rows[0]["end_margin"] = None  # scored before the margin: the file says so, as null
    (tmp_path / "duplex-x.json").write_text(json.dumps(result))
    assert "Scored with the earlier rule" in report.render("duplex-x", tmp_path)


@pytest.mark.parametrize("flags, message", [
    (["--conv-size", "1"], "--conv-size"),
    (["--tokens", "0"], "--tokens"),
    (["--models", "lstm"], "lstm"),
])
def test_duplex_rejects_bad_settings(flags, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        duplex.main(["--quick", "--out", str(tmp_path / "x.json"), *flags])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
