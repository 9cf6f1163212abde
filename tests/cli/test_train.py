"""`assoclm train` end to end on tiny generated data: files, errors, resume, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from assoclm.checkpoint import load_checkpoint
from assoclm.cli import main
from assoclm.cli.train import parse_duration
from tests.train.test_trainer import train_losses, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def train(*args: str) -> int:
    return main(["train", "--preset", "tiny", "--no-progress", *args])


def test_train_writes_a_complete_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    rc = train("--data", corpus, "--max-steps", "20", "--out", str(out), "--seed", "1",
               "--sample-prompt", "anna counts", "--sample-tokens", "30")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "parameters" in captured.out and "bits/byte" in captured.out
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in records if r["kind"] == "eval"][-1]
    assert summary["steps"] == 20 and last_eval["step"] == 20
    assert summary["val_loss"] == last_eval["val_loss"]
    assert f"held-out loss {last_eval['val_loss']:.4f}" in captured.out
    assert summary["sample"]["prompt"] == "anna counts" and summary["sample"]["tokens"] == 30
    assert "anna counts" + summary["sample"]["text"] in captured.out
    assert "--max-steps 20" in summary["provenance"]["command"]
    assert (out / "loss.png").is_file()
    model, tok, ckpt = load_checkpoint(out)
    assert ckpt.name == "step-0000020" and tok.kind == "byte"
    assert model.config.hidden_size == 32 and summary["parameters"] == sum(
        p.numel() for p in model.parameters())

    # The run directory is not overwritten by accident ...
    assert train("--data", corpus, "--max-steps", "5", "--out", str(out)) == 2
    assert "already holds a run" in capsys.readouterr().err
    # ... and resuming cannot silently change the model or the data.
    assert main(["train", "--resume", str(out), "--max-steps", "25", "--hidden-size", "64"]) == 2
    err = capsys.readouterr().err
    assert "--hidden-size 64 (the run has 32)" in err and "--max-steps" in err
    # Extending the run is allowed.
    assert main(["train", "--resume", str(out), "--max-steps", "25", "--no-progress"]) == 0
    assert len(train_losses(out)) == 25
    # --overwrite starts again from scratch.
    assert train("--data", corpus, "--max-steps", "3", "--out", str(out), "--overwrite") == 0
    assert len(train_losses(out)) == 3


def test_train_positronic_with_traits_and_resume(corpus, tmp_path, capsys):
    out = tmp_path / "pos"
    rc = train("--model", "positronic", "--data", corpus, "--max-steps", "6", "--out",
               str(out), "--traits", "hrm,specialists", "--mtp-heads", "2", "--seed", "3")
    assert rc == 0, capsys.readouterr().err
    model, _, _ = load_checkpoint(out)
    assert type(model).__name__ == "PositronicLM"
    assert model.config.traits == ("hrm", "specialists") and model.config.mtp_heads == 2
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in records if r["kind"] == "train"]
    # the logged loss is the next-token cross entropy; the objective's parts ride along
    assert all({"loss_total", "loss_mtp", "loss_z"} <= set(r) for r in train_rows)
    assert main(["train", "--resume", str(out), "--max-steps", "9", "--no-progress"]) == 0
    assert len(train_losses(out)) == 9
    assert train("--model", "positronic", "--data", corpus, "--max-steps", "2", "--out",
                 str(tmp_path / "bad"), "--traits", "wings") == 2
    assert "traits" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "message"), [
    (["--precision", "int8"], "invalid choice: 'int8'"),
    (["--time-budget", "soon"], "invalid duration 'soon'"),
    (["--data", "no/such/*.txt"], "matches no file"),
    (["--data", "nonexistent_corpus"], "neither an existing file"),
    (["--dataset-mode", "duplex_chat", "--duplex-mix", "nowhere.jsonl"], "nowhere.jsonl"),
    (["--learning-rate", "-1"], "learning_rate must be a number in"),
    (["--chunk-size", "24"], "chunk_size must be a power of two"),
    (["--resume", "nowhere"], "checkpoint path not found"),
    (["--model", "transformer", "--memory-key-size", "8"],
     "--memory-key-size does not apply to --model transformer"),
    (["--model", "propagator", "--num-heads", "2"],
     "--num-heads does not apply to --model propagator"),
    (["--model", "mamba"], "invalid choice: 'mamba'"),
])
def test_bad_input_fails_fast_with_a_clear_message(corpus, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) if message.startswith(("invalid choice", "invalid dur")) \
            else _no_exit():
        rc = train("--data", corpus, "--max-steps", "2", "--out", str(tmp_path / "r"), *args)
        assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "latest").exists()


class _no_exit:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("model", ["transformer", "hebbian"])
def test_baselines_train_and_sample_like_the_propagator(corpus, tmp_path, capsys, model):
    out = tmp_path / model
    assert train("--model", model, "--data", corpus, "--max-steps", "6", "--eval-every", "3",
                 "--out", str(out), "--sample-prompt", "anna", "--sample-tokens", "5") == 0
    captured = capsys.readouterr().out
    assert f"model: {model}" in captured
    assert ("KV cache" if model == "transformer" else "memory state") in captured
    loaded, _, _ = load_checkpoint(out)
    assert type(loaded.config).__name__ == {"transformer": "TransformerConfig",
                                            "hebbian": "HebbianConfig"}[model]
    assert len(train_losses(out)) == 6  # exact resume: tests/train/test_trainer.py


def test_parse_duration():
    assert parse_duration("300") == 300 and parse_duration("5m") == 300
    assert parse_duration("1.5h") == 5400 and parse_duration("90s") == 90


def test_ctrl_c_saves_a_checkpoint_and_resume_matches_an_uninterrupted_run(corpus, tmp_path):
    """As a user runs it: Ctrl-C mid-run, then --resume, gives the same losses."""
    steps = "120"
    common = ["--preset", "tiny", "--data", corpus, "--max-steps", steps, "--no-progress",
              "--seed", "2", "--eval-every", "50"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "assoclm.cli", "train", *common]
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "b")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "b" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped at step" in err
    stopped = len(train_losses(tmp_path / "b"))
    assert 5 <= stopped < int(steps), "the run should have been stopped part-way"
    resume = subprocess.run([sys.executable, "-m", "assoclm.cli", "train", "--resume",
                             str(tmp_path / "b"), "--no-progress"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert resume.returncode == 0, resume.stderr
    assert f"resumed from {tmp_path / 'b'}" in resume.stderr
    assert main(["train", *common, "--out", str(tmp_path / "a")]) == 0
    assert train_losses(tmp_path / "b") == train_losses(tmp_path / "a")
