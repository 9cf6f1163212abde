"""Duplex-UltraChat-style JSONL rows as dialogues: idle slices, merging, interruptions and
the errors that name file and line."""

from __future__ import annotations

import json

import pytest

from assoclm.data.corpora import DataError
from assoclm.duplex.sources import load_ultrachat_jsonl
from tests.duplex.sources.helpers import pairs, turn, write_jsonl


def test_ultrachat_drops_idle_merges_slices_and_finds_interrupts(tmp_path):
    unmarked = {
        "id": 1,
        "output": [
            turn("human", "Hello there,"),
            turn("gpt", "<idle>"),
            turn("human", "how are you?"),
            turn("assistant", "I am fine"),
            turn("user", "<idle>"),
            turn("assistant", " and you"),  # cut short: no sentence-final punctuation
            turn("human", "Wait, stop."),
            turn("model", 'He said "stop."'),  # closing quote after the period: finished
            turn("user", "   "),
            turn("human", "Thanks!"),
            turn("gpt", "You're welcome"),  # the last event is never interrupted
        ],
    }
    marked = {
        "output": [
            turn("user", "Tell me a story."),
            turn("assistant", "Once upon a time."),  # no "</s>": cut short despite the period
            turn("user", "Stop!"),
            turn("assistant", "Okay</s>"),
            turn("user", "Another\u2028one"),
            turn("assistant", "Sure thing"),
            turn("assistant", "<idle></s>"),  # a marker on an idle slice ends the turn too
            turn("user", "bye"),
        ]
    }
    all_idle = {"output": [turn("user", "<idle>"), turn("gpt", "")]}
    path = write_jsonl(tmp_path / "rows.jsonl", [unmarked, "", marked, all_idle])

    got = load_ultrachat_jsonl(path)

    assert [d.name for d in got] == [f"{path.as_posix()}:1", f"{path.as_posix()}:3"]
    assert pairs(got[0]) == [
        ("user", "Hello there, how are you?", False),
        ("model", "I am fine and you", True),
        ("user", "Wait, stop.", False),
        ("model", 'He said "stop."', False),
        ("user", "Thanks!", False),
        ("model", "You're welcome", False),
    ]
    assert pairs(got[1]) == [
        ("user", "Tell me a story.", False),
        ("model", "Once upon a time.", True),
        ("user", "Stop!", False),
        ("model", "Okay", False),
        ("user", "Another\u2028one", False),
        ("model", "Sure thing", False),
        ("user", "bye", False),
    ]


def test_ultrachat_reads_another_field(tmp_path):
    path = write_jsonl(
        tmp_path / "m.jsonl", [{"messages": [turn("user", "hi"), turn("gpt", "yo")]}]
    )
    assert pairs(load_ultrachat_jsonl(path, field="messages")[0]) == [
        ("user", "hi", False),
        ("model", "yo", False),
    ]


@pytest.mark.parametrize(
    "row, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"text": "x"}', "no 'output' field (keys: text)"),
        ('{"output": "x"}', "field 'output' is str, expected a list"),
        ('{"output": [{"role": "user"}]}', "slice 0 of 'output' must be an object"),
        ('{"output": ["hi"]}', "slice 0 of 'output' must be an object"),
        ('{"output": [{"role": "user", "content": "a"}, {"role": "narrator", "content": "b"}]}',
         "slice 1 has unknown role 'narrator'"),
        ('{"output": [{"role": "user", "content": 3}]}', "slice 0 content is int, expected a str"),
        ('{"output": [{"role": null, "content": "x"}]}', "slice 0 has unknown role None"),
    ],
    ids=["not-json", "not-object", "no-output", "output-str", "no-content", "slice-str",
         "unknown-role", "content-int", "role-null"],
)  # fmt: skip
def test_ultrachat_malformed_rows_name_file_and_line(tmp_path, row, message):
    good = json.dumps({"output": [turn("user", "fine")]})
    path = write_jsonl(tmp_path / "bad.jsonl", [good, "", row])
    with pytest.raises(DataError) as info:
        load_ultrachat_jsonl(path)
    assert str(info.value).startswith(f"{path}:3: "), str(info.value)
    assert message in str(info.value), str(info.value)


def test_ultrachat_rejects_non_utf8(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"output": [{"role": "user", "content": "caf\xe9"}]}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        load_ultrachat_jsonl(path)
