"""Protocol metrics on hand-made sessions whose answers are worked out by hand below."""

from __future__ import annotations

import itertools
import json
import math
import os

import pytest
import torch

from assoclm.duplex.metrics import (
    CURVE_MARGINS,
    GOALS,
    SEED_REPORTED,
    ProtocolMetrics,
    answer_contains,
    format_curve_table,
    format_source_table,
    format_table,
    margin_for_precision,
    memory_recall,
    plot_turn_taking_curves,
    turn_end_margin,
    write_metrics_json,
)
from assoclm.duplex.protocol import Probe
from assoclm.tokenizer import CONTROL_IDS, NUM_CONTROL

PAD = CONTROL_IDS["[PAD]"]
SESSION = CONTROL_IDS["[SESSION]"]
USER = CONTROL_IDS["[USER]"]
LISTEN = CONTROL_IDS["[LISTEN]"]
USER_END = CONTROL_IDS["[USER_END]"]
MODEL = CONTROL_IDS["[MODEL]"]
USER_INTERRUPT = CONTROL_IDS["[USER_INTERRUPT]"]
MODEL_END = CONTROL_IDS["[MODEL_END]"]
SESSION_END = CONTROL_IDS["[SESSION_END]"]
ACCURACIES = ("decision_accuracy", "listen_accuracy", "user_end_recall",
              "turn_taking_precision", "interrupt_yield_accuracy")
# Plain-text ids (user and model words) start after the control ids.
U1, U2, U3, U4, M1, M2, M3, M4, M5 = range(NUM_CONTROL, NUM_CONTROL + 9)

# One session of three exchanges; the second model turn is interrupted. Rows are
# (input, target, weight, prediction); a prediction that differs from the target is marked.
SESSION_ROWS = [
    (SESSION, LISTEN, 1, LISTEN),                       # 0
    (USER, LISTEN, 1, LISTEN),                          # 1
    (U1, LISTEN, 1, USER_END),                          # 2  wrong: says the user is done
    (U2, USER_END, 1, USER_END),                        # 3
    (USER_END, MODEL, 1, MODEL),                        # 4
    (MODEL, M1, 1, M1),                                 # 5
    (M1, M2, 1, USER_END),                              # 6  wrong, on model content
    (M2, MODEL_END, 1, MODEL_END),                      # 7
    (MODEL_END, USER, 1, USER),                         # 8
    (USER, LISTEN, 1, LISTEN),                          # 9
    (U3, USER_END, 1, LISTEN),                          # 10 wrong: misses the turn end
    (USER_END, MODEL, 1, MODEL),                        # 11
    (MODEL, M3, 1, M4),                                 # 12 wrong, on model content
    (M3, USER_INTERRUPT, 0, LISTEN),                    # 13 weight 0: before the interrupt
    (USER_INTERRUPT, MODEL_END, 1, M4),                 # 14 wrong: does not yield
    (MODEL_END, USER, 1, USER),                         # 15
    (USER, LISTEN, 1, LISTEN),                          # 16
    (U4, USER_END, 1, USER_END),                        # 17
    (USER_END, MODEL, 1, MODEL),                        # 18
    (MODEL, M5, 1, M5),                                 # 19
    (M5, MODEL_END, 1, MODEL_END),                      # 20
    (MODEL_END, SESSION_END, 1, USER),                  # 21 wrong: goes on
    (PAD, PAD, 0, LISTEN),                              # 22 padding
    (PAD, PAD, 0, USER_END),                            # 23 padding
]
# Worked out from the table:
# control targets with weight > 0: rows 0-4, 7-11, 14-18, 20, 21 = 17; wrong at 2, 10, 14, 21.
# [LISTEN] targets: rows 0, 1, 2, 9, 16 = 5; wrong at 2.
# [USER_END] targets: rows 3, 10, 17 = 3; missed at 10.
# [USER_END] predicted on the user stream: rows 2, 3, 17 (row 6 is model content, 23 padding),
# right at 3 and 17.
# [USER_INTERRUPT] inputs: row 14, not yielded.
SESSION_EXPECTED = {
    "decision_accuracy": (13, 17),
    "listen_accuracy": (4, 5),
    "user_end_recall": (2, 3),
    "turn_taking_precision": (2, 3),
    "interrupt_yield_accuracy": (0, 1),
}


def session_arrays(rows=SESSION_ROWS):
    """(input_ids, target_ids, weights, predicted_ids) as [T] tensors."""
    inputs, targets, weights, predicted = zip(*rows)
    return (torch.tensor(inputs), torch.tensor(targets), torch.tensor(weights, dtype=torch.float32),
            torch.tensor(predicted))


def check_counts(result, expected):
    for name, (correct, total) in expected.items():
        got = result[name]
        assert (got["correct"], got["total"]) == (correct, total), \
            f"{name}: got {got['correct']}/{got['total']}, expected {correct}/{total}"
        want = correct / total if total else None
        assert got["value"] == want, f"{name}: value {got['value']}, expected {want}"


def reference_counts(inputs, targets, weights, predicted):
    """The definitions as a per-position loop, for checking the vectorised counts."""
    counts = {name: [0, 0] for name in ACCURACIES}
    for x, y, w, p in zip(inputs.tolist(), targets.tolist(), weights.tolist(), predicted.tolist()):
        if w <= 0:
            continue
        if y != PAD and y < NUM_CONTROL:
            counts["decision_accuracy"][0] += p == y
            counts["decision_accuracy"][1] += 1
        if y == LISTEN:
            counts["listen_accuracy"][0] += p == LISTEN
            counts["listen_accuracy"][1] += 1
        if y == USER_END:
            counts["user_end_recall"][0] += p == USER_END
            counts["user_end_recall"][1] += 1
        if y in (LISTEN, USER_END) and p == USER_END:
            counts["turn_taking_precision"][0] += y == USER_END
            counts["turn_taking_precision"][1] += 1
        if x == USER_INTERRUPT:
            counts["interrupt_yield_accuracy"][0] += p == MODEL_END
            counts["interrupt_yield_accuracy"][1] += 1
    return {name: tuple(c) for name, c in counts.items()}


def random_stream(length, seed, vocab=NUM_CONTROL + 6):
    """Random ids (controls often, so every metric is hit), random 0/1 weights, predictions."""
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(0, vocab, (length,), generator=g)
    targets = torch.randint(0, vocab, (length,), generator=g)
    weights = (torch.rand(length, generator=g) > 0.2).float()
    predicted = torch.where(torch.rand(length, generator=g) < 0.5, targets,
                            torch.randint(0, vocab, (length,), generator=g))
    return inputs, targets, weights, predicted


def test_session_by_hand():
    metrics = ProtocolMetrics()
    metrics.update_predictions(*session_arrays())
    result = metrics.result()
    check_counts(result, SESSION_EXPECTED)
    assert result["model_bpb"] == {"value": None, "bits": None, "bytes": None, "tokens": 4}


def test_weight_zero_is_ignored():
    # Give the weight-0 rows a weight: rows 13 (target [USER_INTERRUPT], predicted [LISTEN])
    # and 23 ([PAD] target, never a decision) change only decision accuracy's total.
    rows = [(x, y, 1 if i in (13, 23) else w, p) for i, (x, y, w, p) in enumerate(SESSION_ROWS)]
    metrics = ProtocolMetrics()
    metrics.update_predictions(*session_arrays(rows))
    check_counts(metrics.result(), {**SESSION_EXPECTED, "decision_accuracy": (13, 18)})
    # Weight 0 on row 2 (a [LISTEN] target predicted [USER_END]) removes it everywhere.
    rows = [(x, y, 0 if i == 2 else w, p) for i, (x, y, w, p) in enumerate(SESSION_ROWS)]
    metrics = ProtocolMetrics()
    metrics.update_predictions(*session_arrays(rows))
    check_counts(metrics.result(), {**SESSION_EXPECTED, "decision_accuracy": (13, 16),
                                    "listen_accuracy": (4, 4), "turn_taking_precision": (2, 2)})


def test_turn_taking_precision_counts_only_the_user_stream():
    # [USER_END] predicted on model content, on the [USER_END] input (target [MODEL]) and on
    # [MODEL_END]: none is a user-stream position, so precision has nothing to count.
    rows = [(MODEL, M1, 1, USER_END), (USER_END, MODEL, 1, USER_END),
            (M1, MODEL_END, 1, USER_END), (USER, LISTEN, 1, LISTEN)]
    metrics = ProtocolMetrics()
    metrics.update_predictions(*session_arrays(rows))
    result = metrics.result()
    assert result["turn_taking_precision"] == {"value": None, "correct": 0, "total": 0}
    check_counts(result, {"decision_accuracy": (1, 3), "listen_accuracy": (1, 1)})


def test_empty_denominators_are_none():
    metrics = ProtocolMetrics(byte_lengths=torch.ones(NUM_CONTROL + 9, dtype=torch.int64))
    result = metrics.result()
    for name in ACCURACIES:
        assert result[name] == {"value": None, "correct": 0, "total": 0}, name
    assert result["model_bpb"]["value"] is None
    # Model content only: every control metric stays empty, bits per byte does not.
    rows = [(MODEL, M1, 1, M1), (M1, M2, 1, M3)]
    metrics.update_predictions(*session_arrays(rows), nll=torch.tensor([1.0, 2.0]))
    result = metrics.result()
    for name in ACCURACIES:
        assert result[name]["value"] is None, name
    assert result["model_bpb"]["value"] == pytest.approx(3.0 / math.log(2) / 2)


@pytest.mark.parametrize("cuts", [[1], [7], [1, 7, 20], list(range(1, 24))],
                         ids=lambda cuts: f"cuts{len(cuts)}")
def test_accumulating_equals_one_update(cuts):
    arrays = session_arrays()
    nll = torch.linspace(0.1, 2.4, len(SESSION_ROWS))
    lengths = torch.randint(1, 4, (NUM_CONTROL + 9,), generator=torch.Generator().manual_seed(0))
    whole = ProtocolMetrics(lengths)
    whole.update_predictions(*arrays, nll=nll)
    pieces = ProtocolMetrics(lengths)
    bounds = [0, *cuts, len(SESSION_ROWS)]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        pieces.update_predictions(*(a[start:stop] for a in arrays), nll=nll[start:stop])
    got, want = pieces.result(), whole.result()
    assert got["model_bpb"].pop("value") == pytest.approx(want["model_bpb"].pop("value"))
    assert got["model_bpb"].pop("bits") == pytest.approx(want["model_bpb"].pop("bits"))
    assert got == want


@pytest.mark.parametrize("batch,length", [(1, 1), (2, 7), (3, 63), (4, 100)],
                         ids=lambda v: str(v))
def test_batch_equals_flattened_and_reference(batch, length):
    inputs, targets, weights, predicted = random_stream(batch * length, seed=batch * 1000 + length)
    flat = ProtocolMetrics()
    flat.update_predictions(inputs, targets, weights, predicted)
    batched = ProtocolMetrics()
    batched.update_predictions(*(a.view(batch, length) for a in (inputs, targets, weights,
                                                                 predicted)))
    assert batched.result() == flat.result()
    check_counts(flat.result(), reference_counts(inputs, targets, weights, predicted))


def test_numpy_arrays_are_accepted():
    arrays = session_arrays()
    metrics = ProtocolMetrics()
    metrics.update_predictions(*(a.numpy() for a in arrays))
    check_counts(metrics.result(), SESSION_EXPECTED)


@pytest.mark.parametrize("margin", [0.0, 2.0])
def test_update_from_logits_equals_predictions(margin):
    """From logits, a listening position (target [LISTEN] or [USER_END]) is predicted by the
    session's rule, [USER_END] iff its logit beats [LISTEN] by more than the margin;
    elsewhere by the argmax over the vocabulary."""
    vocab = NUM_CONTROL + 9
    g = torch.Generator().manual_seed(1)
    inputs, targets, weights, _ = (a.view(2, 12) for a in session_arrays())
    logits = torch.randn(2, 12, vocab, generator=g) * 3
    lengths = torch.randint(1, 5, (vocab,), generator=g)
    from_logits = ProtocolMetrics(lengths, end_margin=margin)
    from_logits.update(inputs, targets, weights, logits)
    nll = -torch.log_softmax(logits.double(), -1).gather(-1, targets[..., None])[..., 0]
    predicted = logits.argmax(-1)
    for b, t in itertools.product(range(2), range(12)):
        if int(targets[b, t]) in (LISTEN, USER_END):
            gap = logits[b, t, USER_END] - logits[b, t, LISTEN]
            predicted[b, t] = USER_END if gap > margin else LISTEN
    assert not torch.equal(predicted, logits.argmax(-1))  # the rule matters here
    from_ids = ProtocolMetrics(lengths)
    from_ids.update_predictions(inputs, targets, weights, predicted, nll=nll)
    got, want = from_logits.result(), from_ids.result()
    assert got.pop("model_bpb") == pytest.approx(want.pop("model_bpb"), rel=1e-6)
    assert got == want


def random_batch(seed: int, scale: float = 4.0):
    """The hand-made session as a [2, 12] batch with random logits."""
    g = torch.Generator().manual_seed(seed)
    inputs, targets, weights, _ = (a.view(2, 12) for a in session_arrays())
    return inputs, targets, weights, torch.randn(2, 12, NUM_CONTROL + 9, generator=g) * scale


def test_turn_taking_curve_agrees_with_the_metrics_at_each_margin():
    """At every tabulated margin, the curve's precision and user-end recall are exactly those
    of a ProtocolMetrics scored with that margin; across batches and after a merge."""
    batches = [random_batch(seed) for seed in range(4)]
    whole = ProtocolMetrics()
    for batch in batches:
        whole.update(*batch)
    curve = whole.turn_taking_curve()
    assert curve["margins"] == list(CURVE_MARGINS)
    assert curve["user_end_total"] == whole.counts["user_end_recall_total"] > 0
    halves = ProtocolMetrics(), ProtocolMetrics()
    for i, batch in enumerate(batches):
        halves[i % 2].update(*batch)
    assert halves[0].merge(halves[1]).turn_taking_curve() == curve
    varied = 0
    for i, margin in enumerate(CURVE_MARGINS):
        scored = ProtocolMetrics(end_margin=margin)
        for batch in batches:
            scored.update(*batch)
        got = scored.result()
        assert curve["user_end_recall"][i] == got["user_end_recall"]["value"]
        assert curve["precision"][i] == got["turn_taking_precision"]["value"]
        assert curve["predicted_end"][i] == got["turn_taking_precision"]["total"]
        varied += curve["predicted_end"][i] != curve["predicted_end"][0]
    assert varied  # the margins change the decisions in this data
    # monotone: a larger margin never predicts more ends
    assert curve["predicted_end"] == sorted(curve["predicted_end"], reverse=True)


def test_turn_taking_curve_is_none_when_scored_without_logits():
    metrics = ProtocolMetrics()
    assert metrics.turn_taking_curve() is None  # nothing scored
    inputs, targets, weights, logits = random_batch(0)
    metrics.update(inputs, targets, weights, logits)
    assert metrics.turn_taking_curve() is not None
    nll = -torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0]
    metrics.update_predictions(inputs, targets, weights, logits.argmax(-1), nll=nll)
    assert metrics.turn_taking_curve() is None  # it would not cover the scored positions


def hand_curve():
    return {"margins": [0.0, 1.0, 2.0], "precision": [0.5, 0.99, None],
            "user_end_recall": [1.0, 0.8, 0.0], "predicted_end": [8, 4, 0],
            "correct_end": [4, 3, 0], "user_end_total": 4}


def test_margin_for_precision():
    assert margin_for_precision(hand_curve(), 0.99) == (1.0, 0.99, 0.8)
    assert margin_for_precision(hand_curve(), 0.4) == (0.0, 0.5, 1.0)
    assert margin_for_precision(hand_curve(), 0.995) is None  # None precision is skipped


def test_format_curve_table_and_plot(tmp_path):
    table = format_curve_table({"all": hand_curve(), "none": None}, margins=[0.0, 2.0])
    lines = table.strip().splitlines()
    assert lines[0] == "| margin (nats) | all: precision / recall |"
    assert lines[2:] == ["| 0 | 50.0 / 100.0 |", "| 2 | n/a / 0.0 |"]
    with pytest.raises(ValueError, match="margin 5.0 is not tabulated"):
        format_curve_table({"all": hand_curve()}, margins=[5.0])
    png = plot_turn_taking_curves({"all": hand_curve(), "none": None}, tmp_path / "c.png", 1.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]  # no temporary left behind


def test_turn_end_margin():
    assert turn_end_margin(0.05) == pytest.approx(math.log(20))
    assert turn_end_margin(1.0) == 0.0
    assert turn_end_margin(0.5, control_weight=2.0) == pytest.approx(math.log(4))
    assert turn_end_margin(0.0) == 0.0
    with pytest.raises(ValueError, match="loss weights"):
        turn_end_margin(-0.1)
    with pytest.raises(ValueError, match="finite"):
        ProtocolMetrics(end_margin=float("inf"))
    with pytest.raises(ValueError, match="decision rules"):
        ProtocolMetrics(end_margin=1.0).merge(ProtocolMetrics())


def test_bpb_by_hand():
    # Vocabulary: the 9 control ids and two text ids, 9 (1 byte) and 10 (2 bytes).
    lengths = torch.tensor([0] * NUM_CONTROL + [1, 2])
    a, b = NUM_CONTROL, NUM_CONTROL + 1
    inputs = torch.tensor([MODEL, a, b, b])
    targets = torch.tensor([a, b, MODEL_END, a])
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0])
    logits = torch.zeros(4, 11)
    # Row 1: the target's logit is ln 3, the other ten are 0, so p = 3 / 13.
    logits[1, b] = math.log(3)
    # Row 2 is a control target and row 3 has weight 0: neither enters bits per byte.
    logits[2, MODEL_END] = 5.0
    logits[3, a] = -9.0
    metrics = ProtocolMetrics(lengths)
    metrics.update(inputs, targets, weights, logits)
    result = metrics.result()["model_bpb"]
    # Row 0: uniform over 11 ids, nll = ln 11; row 1: nll = ln(13 / 3); bytes 1 + 2.
    bits = math.log2(11) + math.log2(13 / 3)
    assert result["bits"] == pytest.approx(bits, rel=1e-6)
    assert result["value"] == pytest.approx(bits / 3, rel=1e-6)
    assert (result["bytes"], result["tokens"]) == (3, 2)


def test_mixing_nll_and_no_nll_is_refused():
    metrics = ProtocolMetrics()
    arrays = session_arrays()
    metrics.update_predictions(*arrays, nll=torch.ones(len(SESSION_ROWS)))
    before = metrics.result()
    with pytest.raises(ValueError, match="nll"):
        metrics.update_predictions(*arrays)
    assert metrics.result() == before, "a refused update must leave the counts alone"


def test_mismatched_shapes_are_refused():
    inputs, targets, weights, predicted = session_arrays()
    with pytest.raises(ValueError, match="predicted_ids"):
        ProtocolMetrics().update_predictions(inputs, targets, weights, predicted[:-1])
    with pytest.raises(ValueError, match="logits"):
        ProtocolMetrics().update(inputs, targets, weights, torch.zeros(len(targets) + 1, 12))


@pytest.mark.parametrize("answer,value,expected", [
    ("The car is RED.", "red", True),
    ("a reddish car", "red", False),
    ("infrared", "red", False),
    ("it's new york.", "New York", True),
    ("it's New\n  York!", "new york", True),
    ("newyork", "New York", False),
    ("new yorker", "New York", False),
    ("it costs $5.", "$5", True),
    ("it costs $50.", "$5", False),
    ("7", "7", True),
    ("17", "7", False),
    ("", "red", False),
], ids=lambda v: repr(v) if isinstance(v, str) else str(v))
def test_answer_contains(answer, value, expected):
    assert answer_contains(answer, value) is expected


def test_answer_contains_refuses_an_empty_value():
    with pytest.raises(ValueError, match="probe value"):
        answer_contains("anything", "  ")


def test_memory_recall():
    probes = [Probe(1, "red", "updated"), Probe(3, "Paris", "updated"),
              Probe(5, "New York", "untouched"), Probe(7, "7", "updated")]
    answers = ["It is red now.", "still reddish", "you live in NEW YORK.", "seven"]
    result = memory_recall(answers, probes)
    # updated: red yes, Paris no, 7 no; untouched: New York yes.
    assert result == {
        "memory_recall": {"value": 0.5, "correct": 2, "total": 4},
        "memory_recall_updated": {"value": 1 / 3, "correct": 1, "total": 3},
        "memory_recall_untouched": {"value": 1.0, "correct": 1, "total": 1},
    }
    empty = memory_recall([], [])
    assert all(entry["value"] is None for entry in empty.values()), empty
    with pytest.raises(ValueError, match="answers"):
        memory_recall(answers[:2], probes)


def full_result():
    metrics = ProtocolMetrics(torch.ones(NUM_CONTROL + 9, dtype=torch.int64))
    metrics.update_predictions(*session_arrays(), nll=torch.full((len(SESSION_ROWS),), 0.5))
    probes = [Probe(1, "red", "updated")]
    return {**metrics.result(), **memory_recall(["red"], probes)}


def test_json_round_trip_and_atomic_write(tmp_path, monkeypatch):
    metrics = full_result()
    metrics["memory_recall_untouched"]["value"] = None
    path = tmp_path / "out" / "metrics.json"
    written = write_metrics_json(path, metrics, provenance={"commit": "abc", "sessions": 1})
    assert written == path
    payload = json.loads(path.read_text())
    assert payload == {"suite": "duplex-eval", "metrics": metrics,
                       "provenance": {"commit": "abc", "sessions": 1},
                       "seed_reported": SEED_REPORTED, "goals": GOALS}
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]
    before = path.read_text()
    # NaN is not JSON: refused, and the file written before is left as it was.
    with pytest.raises(ValueError):
        write_metrics_json(path, {"decision_accuracy": {"value": float("nan")}})
    # A crash in the middle of a write leaves the old file whole and no temporary behind.
    def crash(fd):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk gone"):
        write_metrics_json(path, {})
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_format_table():
    metrics = full_result()
    table = format_table(metrics)
    lines = table.strip().splitlines()
    assert lines[0] == "| metric | value (%) | count |"
    for name in metrics:
        assert any(line.startswith(f"| {name} |") for line in lines), f"{name} not in\n{table}"
    assert "| decision_accuracy | 76.47 | 13/17 |" in lines
    assert "| interrupt_yield_accuracy | 0.00 | 0/1 |" in lines
    # 4 model tokens, 0.5 nats each, 1 byte each.
    assert f"| model_bpb | {0.5 / math.log(2):.4f} bits/byte | 4 tokens, 4 bytes |" in lines
    empty = format_table(ProtocolMetrics().result())
    assert "| listen_accuracy | n/a | 0/0 |" in empty
    compared = format_table(metrics, compare=True)
    assert "| decision_accuracy | 76.47 | 13/17 | 95.4 | 99.0 |" in compared
    assert "| memory_recall_updated | 100.00 | 1/1 |  | 95.0 |" in compared
    # Grouped results (as a whole evaluation returns them) give the same rows; scalars and
    # lists beside them are skipped.
    protocol = {k: v for k, v in metrics.items() if not k.startswith("memory")}
    recall = {k: v for k, v in metrics.items() if k.startswith("memory")}
    grouped = {"loss": 1.5, "protocol": protocol, "memory_recall": recall, "examples": [1]}
    assert format_table(grouped) == table


def test_format_source_table():
    counted = ProtocolMetrics()
    counted.update_predictions(*session_arrays())
    empty = ProtocolMetrics().result()
    text = format_source_table({"shakespeare": empty, "chatterbot": counted.result()})
    lines = text.strip().splitlines()
    assert lines[0] == "| metric | chatterbot | shakespeare |"
    rows = {line.split(" | ")[0].strip("| "): line.strip("| ").split(" | ")[1:]
            for line in lines[2:]}
    want = counted.result()
    for name in ACCURACIES:
        value = want[name]["value"]
        assert rows[name] == [f"{100 * value:.2f}" if value is not None else "n/a", "n/a"]
    assert rows["model_bpb"] == ["n/a", "n/a"]  # no nll, no byte lengths
