"""Training and evaluating with --dataset-mode duplex_chat, on dialogues the test writes."""

from __future__ import annotations

import json
import math

import pytest

from assoclm.cli import main
from assoclm.cli.train import configs_from_flags
from assoclm.tokenizer import NUM_CONTROL
from assoclm.train import Trainer
from tests.train.test_trainer import train_losses


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """A Duplex-UltraChat-style JSONL of short, regular dialogues."""
    path = tmp_path_factory.mktemp("dialogues") / "rows.jsonl"
    lines = []
    for i in range(40):
        lines.append(json.dumps({"output": [
            {"role": "user", "content": f"hello number {i}."},
            {"role": "assistant", "content": f"hi, you said {i}."},
            {"role": "user", "content": "thanks."},
            {"role": "assistant", "content": "you are welcome."},
        ]}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def duplex_train(rows, out, *extra):
    return main(["train", "--preset", "tiny", "--dataset-mode", "duplex_chat", "--duplex-mix",
                 f"{rows}:1,memory:1", "--max-steps", "12", "--eval-every", "6",
                 "--eval-probes", "4", "--no-progress", "--out", str(out), *extra])


def test_duplex_training_reports_protocol_metrics_and_resumes_exactly(rows, tmp_path, capsys):
    assert duplex_train(rows, tmp_path / "a") == 0
    out = capsys.readouterr()
    assert "decision" in out.err and "recall(updated)" in out.err
    records = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [e["step"] for e in evals] == [6, 12]
    proto = evals[-1]["protocol"]
    for key in ("decision_accuracy", "listen_accuracy", "user_end_recall",
                "turn_taking_precision", "interrupt_yield_accuracy", "model_bpb"):
        assert key in proto
    assert proto["decision_accuracy"]["total"] > 0
    assert 0 <= proto["decision_accuracy"]["value"] <= 1
    assert evals[-1]["memory_recall"]["memory_recall"]["total"] == 4
    # stopped at step 5 (as Ctrl-C does) and resumed: the same losses
    model_cfg, config, task = configs_from_flags(
        {"preset": "tiny", "dataset_mode": "duplex_chat", "duplex_mix": f"{rows}:1,memory:1",
         "max_steps": 12, "eval_every": 6, "eval_probes": 4})
    quiet = {"progress": False, "log": lambda message: None}
    Trainer(config, model_cfg, tmp_path / "b", task=task, **quiet).run(stop_after=5)
    assert main(["train", "--resume", str(tmp_path / "b"), "--no-progress"]) == 0
    assert train_losses(tmp_path / "b") == train_losses(tmp_path / "a")
    capsys.readouterr()

    # assoclm eval --task duplex on the run's held-out dialogues
    report = tmp_path / "eval.json"
    assert main(["eval", "--task", "duplex", "--checkpoint", str(tmp_path / "a"),
                 "--max-probes", "3", "--out", str(report)]) == 0
    table = capsys.readouterr().out
    assert "turn_taking_precision" in table and "memory_recall_updated" in table
    saved = json.loads(report.read_text())
    assert saved["metrics"]["memory_recall"]["memory_recall"]["total"] == 3
    # the turn-taking rule undoes the default listen weight, 0.05, and sources are split
    assert saved["metrics"]["end_margin"] == pytest.approx(math.log(20))
    assert set(saved["metrics"]["protocol_by_source"]) == {"local", "memory"}
    assert "By dialogue source" in table
    # the turn-taking trade-off: a curve per source and in all, a table and a chart
    curves = saved["metrics"]["turn_taking_curve"]
    assert set(curves) == {"all", "local", "memory"}
    at = curves["all"]["margins"].index(0.0)
    assert curves["all"]["predicted_end"][at] >= curves["all"]["predicted_end"][at + 2]
    assert "Turn-taking trade-off" in table and "all: precision / recall" in table
    assert (tmp_path / "eval-turn-taking.png").stat().st_size > 1000
    # --data with only synthetic memory dialogues needs no count from the user
    assert main(["eval", "--task", "duplex", "--checkpoint", str(tmp_path / "a"),
                 "--data", "memory:1", "--max-probes", "2", "--out", str(report)]) == 0
    saved = json.loads(report.read_text())
    assert saved["metrics"]["memory_recall"]["memory_recall"]["total"] == 2
    assert set(saved["metrics"]["protocol_by_source"]) == {"memory"}
    capsys.readouterr()
    assert main(["eval", "--task", "duplex", "--checkpoint", str(tmp_path / "a"),
                 "--end-margin", "inf", "--out", str(tmp_path / "bad.json")]) == 2
    assert "--end-margin must be a finite number" in capsys.readouterr().err
    assert not (tmp_path / "bad.json").exists()
    assert saved["provenance"]["command"].startswith("python -m assoclm.cli eval")


def test_memory_only_mix_with_options_and_answer_weight(tmp_path):
    flags = {"preset": "tiny", "dataset_mode": "duplex_chat", "duplex_mix": "memory:1",
             "memory_dialogues": 30,
             "memory_options": "num_facts=1,num_updates=1,distractor_turns=0",
             "answer_weight": 5.0, "p_interrupt": 0.0, "max_steps": 1}
    model_cfg, config, task = configs_from_flags(flags)
    trainer = Trainer(config, model_cfg, tmp_path / "run", progress=False,
                      log=lambda message: None, task=task)
    assert len(trainer.train_ids) + len(trainer.val_ids) == 30
    for dialogue in trainer.val_docs:
        # one fact stated, corrected once and asked: three exchanges, one updated probe
        assert len(dialogue.events) == 6, dialogue
        assert [p.kind for p in dialogue.probes] == ["updated"]
    # Only the answering turn's text weighs 5; the other model text weighs 1.
    for stream in trainer.val_ids:
        text_weights = {float(w) for y, w in zip(stream.target_ids, stream.weights)
                        if y >= NUM_CONTROL}
        assert text_weights == {5.0, 1.0}, f"{stream.name}: text weights {text_weights}"


def test_memory_only_mix_needs_a_count(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--dataset-mode", "duplex_chat", "--duplex-mix",
                 "memory:1", "--max-steps", "1", "--no-progress",
                 "--out", str(tmp_path / "r")]) == 2
    assert "--memory-dialogues" in capsys.readouterr().err


def test_eval_refuses_a_text_checkpoint(tmp_path, capsys):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("some text\n" * 50)
    (tmp_path / "c" / "b.txt").write_text("more text\n" * 50)
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "c"), "--max-steps", "2",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["eval", "--task", "duplex", "--checkpoint", str(tmp_path / "run")]) == 2
    assert "needs a duplex_chat checkpoint" in capsys.readouterr().err
