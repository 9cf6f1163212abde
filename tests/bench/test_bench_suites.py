"""The benchmark suites end to end on their --quick settings, and their renderers."""

from __future__ import annotations

import json
import math

import pytest

from assoclm.bench import decode, lm, recall, report, speed
from assoclm.cli import main as cli_main
from assoclm.models.sizing import count_parameters


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


def test_lm_quick_trains_the_three_families_alike(tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                            for i in range(400)))
    out = tmp_path / "lm.json"
    lm.main(["--quick", "--data", str(data), "--out", str(out), "--runs",
             str(tmp_path / "runs"), "--no-progress", "--no-verbose"])
    result = _load(out)
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == set(lm.MODELS)
    assert len({r["tokens"] for r in rows.values()}) == 1  # equal training tokens
    params = [r["parameters"] for r in rows.values()]
    assert max(params) / min(params) < 1.1  # equal parameters (the preset's promise)
    for r in rows.values():
        assert math.isfinite(r["val_bpb"]) and r["val_bpb"] > 0
        assert r["curve"] and r["curve"][-1]["tokens"] == r["tokens"]
    assert result["targets"] == []  # not judged on quick settings
    (target,) = lm.targets(result["rows"])
    gap = rows["propagator"]["val_bpb"] / rows["transformer"]["val_bpb"] - 1
    assert target["measured"] == pytest.approx(gap)
    assert target["met"] == (gap <= lm.TARGET_GAP)


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


def test_decode_quick_state_sizes(tmp_path):
    out = tmp_path / "decode.json"
    decode.main(["--quick", "--out", str(out)])
    result = _load(out)
    prop = [r for r in result["latency"] if r["model"] == "propagator"]
    trans = {r["context"]: r for r in result["latency"] if r["model"] == "transformer"}
    assert {r["context"] for r in prop} == {64, 256}
    assert len({r["state_bytes"] for r in prop}) == 1  # constant, whatever the context
    cfg = result["config"]["models"]["transformer"]["config"]
    # the measured cache holds the context and at most the few decoded tokens after it
    for L, r in trans.items():
        assert decode.kv_bytes(cfg, L) <= r["state_bytes"] <= decode.kv_bytes(cfg, L + 64)
    assert all(r["seconds_per_token"] > 0 for r in result["latency"])
    assert {(r["model"], r["prompt"]) for r in result["ttft"]} == {
        ("propagator", 64), ("transformer", 64)}
    assert result["targets"] == []


def test_decode_targets():
    lat = [{"model": "propagator", "context": 1024, "seconds_per_token": 1.0},
           {"model": "propagator", "context": 1_048_576, "seconds_per_token": 1.05},
           {"model": "propagator", "context": 32768, "seconds_per_token": 1.0},
           {"model": "transformer", "context": 32768, "seconds_per_token": 4.0}]
    flat, ratio = decode.targets(lat)
    assert flat["met"] and flat["measured"] == pytest.approx(1.05)
    assert not ratio["met"] and ratio["measured"] == pytest.approx(4.0)


def test_renderers_show_the_files_numbers(tmp_path):
    prov = {"command": "python -m assoclm.cli bench x", "git_commit": "abc" * 14,
            "machine": {"device": "cpu", "cpu": "test cpu", "torch_threads": 2, "torch": "2"}}
    rec = {"suite": "recall", "provenance": prov,
           "config": {"test_examples": 10, "steps": 5, "batch": 2, "stop_at": 0.99,
                      "layers": 2, "vocab_size": 64},
           "mqar": [{"model": m, "seq_len": 64, "num_kv_pairs": 4, "width": 32,
                     "accuracy": a, "parameters": 12345, "steps": 5}
                    for m, a in [("propagator", 0.9876), ("transformer", 0.5)]],
           "fact_update": [], "targets": [{"name": "t", "goal": ">= 0.99", "measured": 0.9876,
                                           "met": False}]}
    text = report.render_recall(rec)
    assert "98.8%" in text and "50.0%" in text and "**not met**" in text
    (tmp_path / "r.json").write_text(json.dumps(rec))
    page = report.update("<!-- results:targets -->\n<!-- /results:targets -->\n", tmp_path)
    assert "| [`r.json`](../benchmarks/results/r.json) | t | >= 0.99 | 0.988 | **no** |" in page


def test_bench_cli_lists_suites_and_rejects_unknown(capsys):
    assert cli_main(["bench"]) == 2
    listed = capsys.readouterr().out
    for suite in ("recall", "lm", "train-speed", "decode", "ops", "all"):
        assert suite in listed
    assert cli_main(["bench", "nope"]) == 2
    assert "unknown suite" in capsys.readouterr().err


def test_presets_size_the_families_alike():
    from assoclm.train.presets import PRESETS, get_preset

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


def test_recall_renderer_names_the_training_mix_and_the_accuracy_curve():
    prov = {"command": "python -m assoclm.cli bench recall", "git_commit": "abc" * 14,
            "machine": {"device": "cpu", "cpu": "test cpu", "torch_threads": 1, "torch": "2"}}
    row = {"model": "propagator", "seq_len": 256, "num_kv_pairs": 16, "width": 128,
           "accuracy": 0.198, "parameters": 348804, "steps": 500,
           "train_settings": [[256, 16], [64, 4], [128, 8]],
           "history": [{"step": 250, "accuracy": 0.005}, {"step": 500, "accuracy": 0.198}]}
    rec = {"suite": "recall", "provenance": prov, "mqar": [row], "fact_update": [],
           "config": {"test_examples": 10, "steps": 500, "batch": 32, "stop_at": 0.99,
                      "layers": 2, "vocab_size": 512}}
    text = report.render_recall(rec)
    assert "of (64, 4), (128, 8) (Zoology's mixed training)" in text
    assert "0.5% at step 250, 19.8% at step 500." in text
    assert "1 thread)" in text
    plain = report.render_recall({**rec, "mqar": [{**row, "train_settings": [[256, 16]]}]})
    assert "mixed training" not in plain
