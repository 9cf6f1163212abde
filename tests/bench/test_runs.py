"""The renderers of the files that `assoclm train` and `assoclm eval --task duplex` write."""

from __future__ import annotations

import pytest

from assoclm.bench import runs

PROV = {"git_commit": "0123456789abcdef", "command": "python -m assoclm.cli eval",
        "machine": {"torch_threads": 2, "cpu": "x86", "device": "cpu", "torch": "2"}}


def test_run_summary_renders_every_number_from_the_file():
    summary = {
        "suite": "train-run", "model": "propagator", "parameters": 3_610_000,
        "tokenizer": {"kind": "bpe", "vocab_size": 4096}, "memory_state_bytes": 131072,
        "state": "memory state: 131,072 bytes per sequence, whatever its length",
        "train_config": {"data": "shakespeare", "batch_size": 16, "unroll_len": 128},
        "data": "shakespeare",
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
    text = runs.render_train_run(summary)
    for piece in ("3.61M", "654,321", "3,457 tokens/s", "4.988", "2.346", "ROMEO: Hark.",
                  "--preset demo", "0123456789ab", "131,072", "`shakespeare`, 16 lanes × 128"):
        assert piece in text, piece
    assert runs.render(summary) == text and runs.stated_targets(summary) == []
    assert "Sample" not in runs.render_train_run({**summary, "sample": None})


def _curve() -> dict:
    return {"margins": [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0],
            "precision": [0.5, 0.8, 0.9, 0.95, 0.992, 1.0, None],
            "user_end_recall": [1.0, 0.99, 0.97, 0.9, 0.8, 0.6, 0.0],
            "predicted_end": [0] * 7, "correct_end": [0] * 7, "user_end_total": 10}


def _evaluation(**metrics) -> dict:
    base = {"protocol": {"decision_accuracy": {"value": 0.99, "correct": 99, "total": 100},
                         "listen_accuracy": {"value": None, "correct": 0, "total": 0}},
            "memory_recall": {"memory_recall_updated": {"value": 0.5, "correct": 1,
                                                        "total": 2}},
            "end_margin": 3.0, "protocol_by_source": {}, "turn_taking_curve": None,
            "dialogues": 12, "checkpoint": "runs/x/checkpoints/step-0000100"}
    return {"suite": "duplex-eval", "metrics": {**base, **metrics}, "provenance": PROV,
            "goals": {"decision_accuracy": 0.99, "listen_accuracy": 0.99,
                      "memory_recall_updated": 0.95}}


def test_duplex_eval_renders_the_trade_off_of_files_that_have_it():
    old = runs.render_duplex_eval(_evaluation())
    assert "margin grows" not in old  # an evaluation without the curve has no such table
    curve = _curve()
    text = runs.render_duplex_eval(_evaluation(turn_taking_curve={"all": curve}))
    assert "| 5 | 99.2 / 80.0 |" in text and "| 8 | n/a / 0.0 |" in text
    assert "Precision reaches 99 % first at margin 5, where user-end recall is 80.0 %." in text
    curve["precision"][4] = 0.98
    text = runs.render_duplex_eval(_evaluation(turn_taking_curve={"all": curve}))
    assert "Precision reaches 99 % first at margin 6, where user-end recall is 60.0 %." in text
    assert "margin grows" not in runs.render_duplex_eval(
        _evaluation(turn_taking_curve={"all": None}))


def test_duplex_eval_states_the_rule_it_was_scored_by():
    text = runs.render(_evaluation())
    assert "12 held-out dialogues, checkpoint `step-0000100`." in text
    assert "by more than 3.00 nats" in text and "commit `0123456789ab`" in text
    earlier = runs.render(_evaluation(end_margin=None))
    assert "Scored with the earlier rule" in earlier and "nats" not in earlier


def test_duplex_eval_targets_are_its_goals_where_there_were_cases():
    got = {t["name"]: t for t in runs.stated_targets(_evaluation())}
    assert set(got) == {"duplex decision accuracy", "duplex memory recall updated"}
    assert got["duplex decision accuracy"] == {"name": "duplex decision accuracy",
                                               "goal": ">= 0.99", "measured": 0.99,
                                               "met": True}
    assert got["duplex memory recall updated"]["met"] is False


def test_an_unknown_kind_is_refused():
    with pytest.raises(KeyError):
        runs.render({"suite": "lm"})
