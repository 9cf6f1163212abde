"""The training-throughput benchmark and the README renderers for training results."""

from __future__ import annotations

import json
import statistics

import pytest

from assoclm.bench import report, train


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
    table = report.render_train(result)
    assert f"{rows['input']['tokens_per_s']:,.0f}" in table
    assert "parallel" in capsys.readouterr().out


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.main(["--batch", "0"])
    assert "--batch must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--preset", "huge"])
    assert "unknown preset 'huge'" in capsys.readouterr().err


def test_run_summary_renders_every_number_from_the_file():
    summary = {
        "suite": "train-run", "model": "propagator", "parameters": 3_610_000,
        "tokenizer": {"kind": "bpe", "vocab_size": 4096}, "memory_state_bytes": 131072,
        "train_config": {"data": "shakespeare", "batch_size": 16, "unroll_len": 128},
        "steps": 321, "tokens": 654_321, "elapsed_s": 300.4,
        "tokens_per_s_training_median": 3456.7, "tokens_per_s_overall": 2178.1,
        "val_loss": 4.98765, "val_bpb": 2.34567,
        "provenance": {"command": "python -m assoclm.cli train --preset demo",
                       "git_commit": "0123456789abcdef",
                       "machine": {"device": "cpu", "cpu": "X", "torch_threads": 2,
                                   "torch": "2.13.0"}},
        "sample": {"prompt": "ROMEO:", "text": " Hark.", "tokens": 3, "temperature": 0.8,
                   "top_k": 50, "top_p": 0.95, "seed": 0},
    }
    text = report.render_train_run(summary)
    for piece in ("3.61M", "654,321", "3,457 tokens/s", "4.988", "2.346", "ROMEO: Hark.",
                  "--preset demo", "0123456789ab", "131,072"):
        assert piece in text, piece
