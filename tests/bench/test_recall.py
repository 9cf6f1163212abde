"""`assoclm bench recall` on its --quick settings, its targets and its table."""

from __future__ import annotations

import json

import pytest

from assoclm.bench import recall


def _load(path):
    return json.loads(path.read_text())


def test_recall_quick_writes_rows_targets_and_plot(tmp_path):
    out = tmp_path / "recall.json"
    recall.main(["--quick", "--out", str(out), "--no-progress", "--no-verbose"])
    result = _load(out)
    assert result["suite"] == "recall"
    assert result["provenance"]["command"].startswith("python -m assoclm.cli bench recall")
    assert {r["model"] for r in result["mqar"]} == set(recall.MODELS)
    counts = {r["model"]: r["parameters"] for r in result["mqar"]}
    assert counts["propagator"] == counts["hebbian"]
    assert abs(counts["transformer"] / counts["propagator"] - 1) < 0.1
    for r in result["mqar"] + result["fact_update"]:
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["steps"] <= result["config"]["steps"]
        assert r["history"][-1]["step"] == r["steps"]
    assert {"accuracy_overwritten", "accuracy_untouched"} <= set(result["fact_update"][0])
    assert result["targets"] == []  # the quick settings are not the target's
    assert (tmp_path / "recall.png").stat().st_size > 1000


def test_recall_trains_on_a_mix_of_settings_and_tests_on_the_target(tmp_path, monkeypatch):
    seen = []

    def fit_spy(model, train, test, **kwargs):
        seen.append((train, test))
        return real_fit(model, train, test, **kwargs)

    real_fit = recall.fit
    monkeypatch.setattr(recall, "fit", fit_spy)
    out = tmp_path / "recall.json"
    recall.main(["--quick", "--models", "propagator", "--mqar", "32x4",
                 "--mqar-train-mix", "16x2,48x8", "--facts", "none", "--out", str(out),
                 "--no-progress", "--no-verbose", "--no-plot"])
    (row,) = _load(out)["mqar"]
    assert row["train_settings"] == [[32, 4], [16, 2]]  # 48x8 does not fit in 32
    assert _load(out)["fact_update"] == []  # --facts none
    ((train, test),) = seen
    assert train.seq_len == test.seq_len == 32 and train.num_examples == 256  # --quick's
    per_example = train.scored.sum(1)
    assert set(per_example.tolist()) == {2, 4} and (per_example == 2).sum() == 128
    assert set(test.scored.sum(1).tolist()) == {4}  # scored on the target setting only


def test_recall_targets_are_judged_on_the_measured_numbers():
    row = {"model": "propagator", "seq_len": 256, "num_kv_pairs": 16, "width": 128,
           "accuracy": 0.985}
    fact = {"model": "propagator", "accuracy_overwritten": 0.995}
    (t1, t2) = recall.targets([row, {**row, "width": 64}], [fact])
    assert t1["measured"] == 0.985 and t1["met"] is False
    assert t2["met"] is True
    (missing,) = recall.targets([{**row, "width": 64}], [])
    assert missing["measured"] == "not run with these settings" and not missing["met"]


def test_recall_rejects_bad_settings(capsys):
    with pytest.raises(SystemExit):
        recall.main(["--mqar", "256-16"])
    assert "SEQ_LENxPAIRS" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        recall.main(["--models", "propagator,mamba"])
    assert "mamba" in capsys.readouterr().err


def test_recall_checks_every_setting_before_training(tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("a model was trained before a bad setting was caught")

    monkeypatch.setattr(recall, "fit", no_training)
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit):  # the fact-update setting comes last, and is refused
        recall.main(["--models", "propagator", "--widths", "32", "--mqar", "32x4",
                     "--vocab-size", "64", "--facts", "100,2", "--out", str(out)])
    assert "num_facts" in capsys.readouterr().err
    assert not out.exists()


PROV = {"command": "python -m assoclm.cli bench recall", "git_commit": "abc" * 14,
        "machine": {"device": "cpu", "cpu": "test cpu", "torch_threads": 2, "torch": "2"}}
CONFIG = {"test_examples": 10, "steps": 5, "batch": 2, "stop_at": 0.99, "layers": 2,
          "vocab_size": 64, "conv_size": 0}


def test_renderer_shows_the_files_numbers():
    rec = {"suite": "recall", "provenance": PROV, "config": CONFIG,
           "mqar": [{"model": m, "seq_len": 64, "num_kv_pairs": 4, "width": 32,
                     "accuracy": a, "parameters": 12345, "steps": 5, "history": [],
                     "train_settings": [[64, 4]]}
                    for m, a in [("propagator", 0.9876), ("transformer", 0.5)]],
           "fact_update": [], "targets": [{"name": "t", "goal": ">= 0.99", "measured": 0.9876,
                                           "met": False}]}
    text = recall.render(rec)
    assert "98.8%" in text and "50.0%" in text and "**not met**" in text
    assert "| (64, 4) | 32 | 98.8% (12k, 5 steps) | 50.0% (12k, 5 steps) |" in text
    assert "convolution" not in text and "2 threads)" in text
    assert recall.stated_targets(rec) == rec["targets"]
    conv = recall.render({**rec, "config": {**CONFIG, "conv_size": 4}})
    assert "with a short convolution of size 4 before q, k, v" in conv


def test_renderer_shows_the_fact_update_table():
    fact = {"model": "propagator", "num_facts": 32, "num_updates": 8, "num_filler": 16,
            "width": 64, "accuracy_overwritten": 0.9975, "accuracy_untouched": 0.5,
            "steps": 40}
    text = recall.render({"suite": "recall", "provenance": PROV, "config": CONFIG, "mqar": [],
                          "fact_update": [fact], "targets": []})
    assert "Fact update (32 facts, 8 overwritten, 16 filler tokens, width 64):" in text
    assert "| propagator | 99.8% | 50.0% | 40 |" in text and "MQAR" not in text


def test_renderer_names_the_training_mix_and_the_accuracy_curve():
    prov = {**PROV, "machine": {**PROV["machine"], "torch_threads": 1}}
    row = {"model": "propagator", "seq_len": 256, "num_kv_pairs": 16, "width": 128,
           "accuracy": 0.198, "parameters": 348804, "steps": 500,
           "train_settings": [[256, 16], [64, 4], [128, 8]],
           "history": [{"step": 250, "accuracy": 0.005}, {"step": 500, "accuracy": 0.198}]}
    rec = {"suite": "recall", "provenance": prov, "mqar": [row], "fact_update": [],
           "config": {"test_examples": 10, "steps": 500, "batch": 32, "stop_at": 0.99,
                      "layers": 2, "vocab_size": 512, "conv_size": 0}, "targets": []}
    text = recall.render(rec)
    assert "of (64, 4), (128, 8) (Zoology's mixed training)" in text
    assert "0.5% at step 250, 19.8% at step 500." in text
    assert "1 thread)" in text
    plain = recall.render({**rec, "mqar": [{**row, "train_settings": [[256, 16]]}]})
    assert "mixed training" not in plain
