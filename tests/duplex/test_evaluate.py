"""Held-out duplex evaluation: protocol metrics per dialogue source add up to the totals."""

from __future__ import annotations

import pytest
import torch

from assoclm.duplex.evaluate import dialogue_source, evaluate_duplex
from assoclm.duplex.metrics import ACCURACY_METRICS, ProtocolMetrics
from assoclm.duplex.protocol import Dialogue, Event
from assoclm.duplex.sources import memory_dialogues
from assoclm.duplex.stream import build_stream
from assoclm.models import PropagatorConfig, PropagatorLM
from assoclm.tokenizer import ByteTokenizer
from assoclm.train.evaluate import evaluate, token_byte_lengths, whole_documents_within

TOK = ByteTokenizer()


@pytest.mark.parametrize("name, source", [
    ("memory/0/12", "memory"), ("chatterbot/food.yml:3", "chatterbot"),
    ("shakespeare/hamlet/4#2", "shakespeare"), ("/data/rows.jsonl:7", "local"),
    ("rows.jsonl:1", "local"), ("memoryless/1", "local"),
])
def test_dialogue_source(name, source):
    assert dialogue_source(name) == source


def test_per_source_metrics_add_up_to_the_totals():
    torch.manual_seed(0)
    model = PropagatorLM(PropagatorConfig(vocab_size=TOK.vocab_size, hidden_size=32,
                                          num_layers=2, memory_key_size=16,
                                          memory_value_size=16, chunk_size=16)).eval()
    chat = [Dialogue(f"chatterbot/x.yml:{i}", [Event("user", "Hello there."),
                                               Event("model", f"Hi number {i}.")])
            for i in range(3)]
    local = [Dialogue("rows.jsonl:1", [Event("user", "Two words."), Event("model", "Ok."),
                                       Event("user", "Bye.")])]
    dialogues = memory_dialogues(2, num_facts=1, num_updates=0, distractor_turns=0)
    dialogues = chat + dialogues + local
    streams = [build_stream(d, TOK) for d in dialogues]
    result = evaluate_duplex(model, TOK, streams, dialogues, batch_size=2, seq_len=16,
                             max_tokens=1 << 20, max_probes=1)
    by_source = result["protocol_by_source"]
    assert sorted(by_source) == ["chatterbot", "local", "memory"]
    for name in ACCURACY_METRICS:
        for part in ("correct", "total"):
            assert result["protocol"][name][part] == sum(s[name][part]
                                                         for s in by_source.values())
    # The totals are what one pass over all streams counts.
    lengths = token_byte_lengths(TOK)
    one = ProtocolMetrics(lengths)
    seen_grad = []
    update = one.update
    one.update = lambda *a: (seen_grad.append(a[-1].requires_grad), update(*a))
    scored = evaluate(model, streams, lengths, 2, 16, 1 << 20, metrics=one,
                      whole_documents=True)
    assert seen_grad and not any(seen_grad)  # scoring builds no autograd graph
    want = one.result()
    assert result["loss"] == pytest.approx(scored["loss"], rel=1e-4)
    assert result["bpb"] == pytest.approx(scored["bpb"], rel=1e-4)
    assert result["tokens"] == scored["tokens"]
    for name in ACCURACY_METRICS:
        assert result["protocol"][name] == want[name]
    assert result["turn_taking_curve"]["all"] == one.turn_taking_curve()
    assert set(result["turn_taking_curve"]) == {"all", *by_source}
    assert result["protocol"]["decision_accuracy"]["total"] > 0
    with pytest.raises(ValueError, match="no held-out dialogue"):
        evaluate_duplex(model, TOK, [], [], batch_size=2, seq_len=16, max_tokens=100)


@pytest.mark.parametrize("sizes, budget, kept", [
    ([5, 5, 5], 10, 2), ([5, 5, 5], 9, 1), ([20, 1], 5, 1), ([3, 4], 100, 2), ([], 10, 0),
])
def test_whole_documents_within(sizes, budget, kept):
    assert whole_documents_within(sizes, budget) == kept
