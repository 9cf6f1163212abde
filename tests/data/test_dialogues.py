"""Dialogue sources (Duplex-UltraChat JSONL, chatterbot YAML, Shakespeare, synthetic memory
dialogues) and their weighted mix. No network outside the slow-marked tests."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from assoclm.data import dialogues as dl
from assoclm.data.corpora import DataError
from assoclm.data.dialogues import (
    DEFAULT_DUPLEX_MIX,
    load_chatterbot,
    load_dialogues,
    load_shakespeare_dialogues,
    load_ultrachat_jsonl,
    memory_dialogues,
    mix_dialogues,
    mix_sources,
    parse_chatterbot_yaml,
    parse_memory_options,
    parse_play,
)
from assoclm.duplex.protocol import Dialogue, Event


def _pairs(dialogue: Dialogue) -> list[tuple[str, str, bool]]:
    return [(e.role, e.text, e.interrupted) for e in dialogue.events]


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


# Duplex-UltraChat JSONL -------------------------------------------------------------------


def _s(role: str, content: object) -> dict[str, object]:
    return {"role": role, "content": content}


def test_ultrachat_drops_idle_merges_slices_and_finds_interrupts(tmp_path):
    unmarked = {
        "id": 1,
        "output": [
            _s("human", "Hello there,"),
            _s("gpt", "<idle>"),
            _s("human", "how are you?"),
            _s("assistant", "I am fine"),
            _s("user", "<idle>"),
            _s("assistant", " and you"),  # cut short: no sentence-final punctuation
            _s("human", "Wait, stop."),
            _s("model", 'He said "stop."'),  # closing quote after the period: finished
            _s("user", "   "),
            _s("human", "Thanks!"),
            _s("gpt", "You're welcome"),  # the last event is never interrupted
        ],
    }
    marked = {
        "output": [
            _s("user", "Tell me a story."),
            _s("assistant", "Once upon a time."),  # no "</s>": cut short despite the period
            _s("user", "Stop!"),
            _s("assistant", "Okay</s>"),
            _s("user", "Another\u2028one"),
            _s("assistant", "Sure thing"),
            _s("assistant", "<idle></s>"),  # a marker on an idle slice ends the turn too
            _s("user", "bye"),
        ]
    }
    all_idle = {"output": [_s("user", "<idle>"), _s("gpt", "")]}
    path = _write_jsonl(tmp_path / "rows.jsonl", [unmarked, "", marked, all_idle])

    got = load_ultrachat_jsonl(path)

    assert [d.name for d in got] == [f"{path.as_posix()}:1", f"{path.as_posix()}:3"]
    assert _pairs(got[0]) == [
        ("user", "Hello there, how are you?", False),
        ("model", "I am fine and you", True),
        ("user", "Wait, stop.", False),
        ("model", 'He said "stop."', False),
        ("user", "Thanks!", False),
        ("model", "You're welcome", False),
    ]
    assert _pairs(got[1]) == [
        ("user", "Tell me a story.", False),
        ("model", "Once upon a time.", True),
        ("user", "Stop!", False),
        ("model", "Okay", False),
        ("user", "Another\u2028one", False),
        ("model", "Sure thing", False),
        ("user", "bye", False),
    ]


def test_ultrachat_reads_another_field(tmp_path):
    path = _write_jsonl(tmp_path / "m.jsonl", [{"messages": [_s("user", "hi"), _s("gpt", "yo")]}])
    assert _pairs(load_ultrachat_jsonl(path, field="messages")[0]) == [
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
    good = json.dumps({"output": [_s("user", "fine")]})
    path = _write_jsonl(tmp_path / "bad.jsonl", [good, "", row])
    with pytest.raises(DataError) as info:
        load_ultrachat_jsonl(path)
    assert str(info.value).startswith(f"{path}:3: "), str(info.value)
    assert message in str(info.value), str(info.value)


def test_ultrachat_rejects_non_utf8(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"output": [{"role": "user", "content": "caf\xe9"}]}\n')
    with pytest.raises(DataError, match="not UTF-8"):
        load_ultrachat_jsonl(path)


# chatterbot-corpus YAML -------------------------------------------------------------------

CHATTERBOT_SAMPLE = """\
categories:
- AI
- artificial intelligence

# a comment line
conversations:
- - What is AI?
  - Artificial Intelligence is the branch of engineering and science devoted to
    constructing machines that think.
- - 'Do you say ''hello''?'
  - 'two vultures boarded a plane.  The  stewardess
    stops them and says "sorry sir."  '
- - "Fun fact: a \\"quote\\", a tab\\there and \\u00e9"
  - "one
    two"
  - '1984'
- - can you write code?
  - |
    Sure:

    ```
    def f(x):
        return x  # identity
    ```

- - strip it
  - |-
    no newline
  - plain ending in nbsp\u00a0
- In a game of bingo, what is "two little ducks"?
  - '22'
- -   spaced out  # a trailing comment
  - Yes
- - 'para one

    para two'
  - ok
"""


def test_chatterbot_parser_reads_the_quoting_forms_the_corpus_uses():
    got = parse_chatterbot_yaml(CHATTERBOT_SAMPLE, "sample.yml")
    assert got == [
        (7, ["What is AI?", "Artificial Intelligence is the branch of engineering and science "
                            "devoted to constructing machines that think."]),
        (10, ["Do you say 'hello'?",
              'two vultures boarded a plane.  The  stewardess stops them and says "sorry sir."  ']),
        (13, ['Fun fact: a "quote", a tab\there and \u00e9', "one two", "1984"]),
        (17, ["can you write code?", "Sure:\n\n```\ndef f(x):\n    return x  # identity\n```\n"]),
        (26, ["strip it", "no newline", "plain ending in nbsp\u00a0"]),
        # Line 30 misses its "- ", so YAML folds question and answer into one string: skipped.
        (32, ["spaced out", "Yes"]),  # plain "Yes" stays text, not YAML 1.1's True
        (34, ["para one\npara two", "ok"]),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "item, text",
    [
        ("'a   \n    b'", "a b"),
        ("'a\n\n\n    b'", "a\n\nb"),
        ('"a\\\n    b"', "ab"),
        ('"a \\\n    b"', "a b"),
        ("plain   \n    text  ", "plain text"),
        ("|-\n    x\n\n      y\n", "x\n\n  y"),
        ("|+\n    x\n", "x\n\n"),  # keeps the blank line before "- - end"
    ],
    ids=["fold-trims", "fold-blank-lines", "escaped-break", "escaped-break-space", "plain-fold",
         "literal-strip", "literal-keep"],
)  # fmt: skip
def test_chatterbot_parser_folds_lines_like_yaml(item, text):
    got = parse_chatterbot_yaml(f"conversations:\n- - {item}\n- - end\n", "f.yml")
    assert got[0] == (2, [text]), got


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("conversations:\n- - a\n\t- b\n", 3, "tab in indentation"),
        ("conversations:\n- [a, b]\n", 2, "unsupported YAML syntax"),
        ("conversations:\n- - &x a\n", 2, "unsupported YAML syntax"),
        ("conversations:\n- - Note: this is a mapping\n", 2, "mapping inside a list"),
        ("conversations:\n- - a\n  - an answer: with a colon\n", 3, "mapping inside a list"),
        ("conversations:\n- - a\n  - 'never closed\n", 3, "never closed"),
        ("conversations:\n- - a\n  - >\n    folded\n", 3, "unsupported block scalar"),
        ("conversations:\n- - a\n  - |2\n    text\n", 3, "unsupported block scalar"),
        ('conversations:\n- - "bad \\q escape"\n', 2, "unknown escape \\q"),
        ("conversations:\n- - 'done' and more\n", 2, "unexpected text after the closing quote"),
        ("conversations:\n- - 'a'\n    - b\n", 3, "unexpected indentation"),
        ("conversations:\n- -\n- - b\n", 2, "empty list item"),
        ("- - a\n", 1, "expected 'key:' at the top level"),
        ("conversations:\n- - a\nconversations:\n- - b\n", 3, "duplicate key 'conversations'"),
        ("---\nconversations:\n- - a\n", 1, "document markers"),
        ("categories:\n- x\n", None, "'conversations' must be a list of lists; found nothing"),
        ("conversations: hello\n", None, "must be a list of lists; found str"),
        ("conversations:\n- - a\n  - - nested\n", 3, "expected a line of text, got a list"),
        ("", 1, "holds no YAML content"),
    ],
    ids=["tab", "flow", "anchor", "colon", "colon-2", "unclosed", "folded", "indicator",
         "escape", "after-quote", "indent", "empty-item", "top-list", "duplicate", "marker",
         "no-conversations", "scalar-conversations", "nested-list", "empty"],
)  # fmt: skip
def test_chatterbot_parser_rejects_what_it_does_not_read(text, line, message):
    with pytest.raises(DataError) as info:
        parse_chatterbot_yaml(text, "f.yml")
    prefix = "f.yml:" if line is None else f"f.yml:{line}: "
    assert str(info.value).startswith(prefix), str(info.value)
    assert message in str(info.value), str(info.value)


def _fake_corpus(monkeypatch, tmp_path: Path, files: dict[str, str]) -> None:
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    monkeypatch.setattr(dl, "fetch_corpus", lambda name, cache_dir=None, progress=True: paths)


def test_load_chatterbot_alternates_user_and_model(monkeypatch, tmp_path):
    yml = "conversations:\n- - Hi\n  - Hello\n  - How are you?\n- - Bye\n  - '  See you  '\n"
    _fake_corpus(monkeypatch, tmp_path, {"greetings.yml": yml})
    got = load_chatterbot()
    assert [d.name for d in got] == ["chatterbot/greetings.yml:2", "chatterbot/greetings.yml:5"]
    assert _pairs(got[0]) == [("user", "Hi", False), ("model", "Hello", False),
                              ("user", "How are you?", False)]  # fmt: skip
    assert _pairs(got[1]) == [("user", "Bye", False), ("model", "See you", False)]


# Shakespeare ------------------------------------------------------------------------------

PLAY = """\
THE TRAGEDY OF TESTING

PERSONS REPRESENTED.

ALPHA, a king.

SCENE: A castle.

ACT I.

SCENE I. A hall.

[Enter ALPHA and BETA.]

ALPHA.
Who goes there?

BETA. [Aside.]
A friend,
  a friend indeed.

[Exit ALPHA, in
haste.]

BETA.
I stay [Sits] here.

[Enter GAMMA, who

looks about.]

GAMMA
No full stop after my name.

[Exeunt.}

SCENE II. Another place,
quite far away.

ALPHA.

After a blank line.

[Enter BETA [with a lamp.]]

Still Alpha speaking.

SONG.
Hey nonny.

BETA.
Hello.

THE END
"""


def test_parse_play_speakers_directions_scenes_and_merging():
    assert parse_play(PLAY) == [
        [
            ("ALPHA", "Who goes there?"),
            ("BETA", "A friend,\na friend indeed.\nI stay here."),
            ("GAMMA", "No full stop after my name."),
        ],
        [
            ("ALPHA", "After a blank line.\nStill Alpha speaking.\nHey nonny."),
            ("BETA", "Hello."),
        ],
    ]


def test_parse_play_reads_abbreviated_title_case_speakers():
    play = "Act I.\n\nScene I. Elsinore.\n\nBer.\nWho's there?\n\nFran.\nNay, answer me.\n\n" \
           "Ber.\nLong live the king!\n\nHor.\n\n[Exit.]\n\nBer.\nWell, good night.\n\n" \
           "1 Clown.\nIs she to be buried?\n\nFarewell.\n"
    assert parse_play(play) == [[
        ("Ber", "Who's there?"), ("Fran", "Nay, answer me."),
        # Horatio says nothing, so Bernardo's two speeches merge.
        ("Ber", "Long live the king!\nWell, good night."),
        # A known limit: in a title-case play a lone "Farewell." reads as a speaker's name;
        # with no speech after it, it is dropped.
        ("1 Clown", "Is she to be buried?"),
    ]]  # fmt: skip


def _scene(n: int) -> str:
    speakers = ["ALPHA", "BETA", "GAMMA"]
    return "\n\n".join(f"{speakers[k % 3]}.\nLine {k}." for k in range(n))


@pytest.mark.parametrize(
    "n, max_events, sizes",
    [(5, 40, [5]), (5, 2, [2, 2]), (5, 4, [3, 2]), (7, 3, [3, 2, 2]), (1, 40, [])],
    ids=["n5-max40", "n5-max2", "n5-max4", "n7-max3", "n1-max40"],
)
def test_shakespeare_dialogues_split_scenes_and_alternate(monkeypatch, tmp_path, n, max_events,
                                                          sizes):  # fmt: skip
    play = f"ACT I.\n\nSCENE I.\n\n{_scene(n)}\n\nSCENE II.\n\n{_scene(2)}\n"
    _fake_corpus(monkeypatch, tmp_path, {"test_play_gut.txt": play, "poem_gut.txt": "O rose\n"})
    got = load_shakespeare_dialogues(max_events=max_events)
    first = [d for d in got if d.name.startswith("shakespeare/test_play/1:")]
    assert [len(d.events) for d in first] == sizes
    assert got[-1].name == "shakespeare/test_play/2:0"
    assert len({d.name for d in got}) == len(got)
    for d in got:
        roles = [("user", "model")[k % 2] for k in range(len(d.events))]
        assert [e.role for e in d.events] == roles, d.name
    texts = [e.text for d in first for e in d.events]
    assert texts == [f"Line {k}." for k in range(len(texts))]


def test_shakespeare_rejects_tiny_max_events():
    with pytest.raises(ValueError, match="max_events must be at least 2"):
        load_shakespeare_dialogues(max_events=1)


# Memory dialogues -------------------------------------------------------------------------

SPANS = dict(num_facts=(2, 4), num_updates=(1, 2), distractor_turns=(1, 3))


def test_memory_dialogues_are_deterministic_and_seeded():
    a = memory_dialogues(20, seed=3)
    assert a == memory_dialogues(20, seed=3)
    assert memory_dialogues(7, seed=3) == a[:7], "dialogue i must depend only on (seed, i)"
    b = memory_dialogues(20, seed=4)
    same = sum(x.events == y.events for x, y in zip(a, b))
    assert same == 0, f"{same} of 20 dialogues identical under seeds 3 and 4"
    assert [d.name for d in a] == [f"memory/3/{i}" for i in range(20)]


@pytest.mark.parametrize("index", range(60), ids=lambda i: f"i{i}")
def test_memory_probes_answer_with_the_latest_value(index):
    spans = ((1, 5), (0, 4), (0, 3), (0, 2))
    dialogue, facts = dl._memory_dialogue(11, index, *spans)
    events = dialogue.events
    assert len(dialogue.probes) == len(facts)
    for probe, fact in zip(dialogue.probes, sorted(facts, key=lambda f: f.question)):
        answer = events[probe.event_index]
        question = events[probe.event_index - 1]
        assert answer.role == "model" and question.role == "user"
        assert probe.event_index - 1 == fact.question
        assert question.text.endswith("?") and fact.subject in question.text, question.text
        assert probe.answer == fact.values[-1] and probe.answer in answer.text, answer.text
        # Every stated value sits in its own user event, in order, before the question.
        assert len(fact.mentions) == len(fact.values)
        assert fact.mentions == sorted(fact.mentions) and fact.mentions[-1] < fact.question
        for at, value in zip(fact.mentions, fact.values):
            assert events[at].role == "user" and value in events[at].text, events[at].text
        if probe.kind == "updated":
            assert len(fact.values) > 1
            assert fact.values[0] != probe.answer
            assert fact.values[0] not in answer.text, (fact.values, answer.text)
        else:
            assert probe.kind == "untouched" and fact.values == [probe.answer]


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
def test_memory_subjects_and_values_never_contain_each_other(seed):
    for index in range(100):
        _, facts = dl._memory_dialogue(seed, index, (3, 6), (2, 5), (0, 0), (0, 0))
        words = sorted({f.subject for f in facts}) + [v for f in facts for v in f.values]
        low = [w.lower() for w in words]
        for i, a in enumerate(low):
            for b in low[i + 1 :]:
                assert a not in b and b not in a, f"seed {seed} dialogue {index}: {words}"


def test_memory_corrections_say_so():
    corrected = 0
    for index in range(40):
        dialogue, facts = dl._memory_dialogue(5, index, (2, 4), (1, 3), (0, 0), (0, 0))
        for fact in facts:
            for at in fact.mentions[1:]:
                assert dialogue.events[at].text.startswith(
                    tuple(prefix for prefix, _ in dl._CORRECTIONS)
                ), dialogue.events[at].text
                corrected += 1
    assert corrected >= 40


@pytest.mark.parametrize(
    "facts, updates, chat, gap",
    [(1, 0, 0, None), (3, 2, 1, None), (5, 7, 2, 4), (2, 3, 0, 6), (4, 1, 5, 0)],
    ids=lambda v: str(v),
)
def test_memory_counts_are_respected(facts, updates, chat, gap):
    small_talk = {user for user, _ in dl._SMALL_TALK}
    got = memory_dialogues(
        25, seed=1, num_facts=facts, num_updates=updates, distractor_turns=chat,
        question_distance=gap,
    )  # fmt: skip
    for d in got:
        gap_turns = gap or 0
        expected = 2 * (facts + updates + chat + gap_turns + facts)
        assert len(d.events) == expected, f"{d.name}: {len(d.events)} events, want {expected}"
        assert len(d.probes) == facts
        assert sum(e.text in small_talk for e in d.events if e.role == "user") == chat + gap_turns
        first_question = min(p.event_index for p in d.probes) - 1
        before = d.events[first_question - 2 * gap_turns : first_question : 2]
        assert all(e.text in small_talk for e in before), [e.text for e in before]
        n_updated = sum(p.kind == "updated" for p in d.probes)
        assert n_updated <= min(updates, facts)
        assert (n_updated > 0) == (updates > 0)


def test_memory_vocabulary_is_too_large_to_memorise():
    got = memory_dialogues(200, seed=0, **SPANS)
    answers = Counter(p.answer for d in got for p in d.probes)
    total = sum(answers.values())
    assert len(answers) > 250, f"only {len(answers)} distinct answers in {total} probes"
    assert answers.most_common(1)[0][1] <= 8, answers.most_common(3)
    questions = {d.events[p.event_index - 1].text for d in got for p in d.probes}
    assert len(questions) > 300, f"only {len(questions)} distinct questions"


def test_memory_question_wording_is_natural():
    texts = {e.text for d in memory_dialogues(300, seed=2) for e in d.events}
    assert any(t.startswith("What color is the ") and t.endswith("?") for t in texts)
    assert any(t.startswith("What is my ") and t.endswith("'s name?") for t in texts)
    assert any(t.startswith("Actually, ") for t in texts)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_facts=0), "num_facts"),
        (dict(num_facts=(3, 1)), "num_facts"),
        (dict(num_updates=-1), "num_updates"),
        (dict(distractor_turns=(0, "2")), "distractor_turns"),
        (dict(question_distance=(2, 1)), "question_distance"),
    ],
    ids=["facts-0", "facts-reversed", "updates-negative", "chat-str", "distance-reversed"],
)
def test_memory_rejects_bad_ranges(kwargs, message):
    with pytest.raises(ValueError, match=message):
        memory_dialogues(1, **kwargs)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("num_facts=2", {"num_facts": 2}),
        (" num_facts = 1-3 , num_updates=0", {"num_facts": (1, 3), "num_updates": 0}),
        ("distractor_turns=0,question_distance=2-2",
         {"distractor_turns": 0, "question_distance": (2, 2)}),
    ],
    ids=["one", "range-and-spaces", "distance"],
)
def test_parse_memory_options(text, expected):
    options = parse_memory_options(text)
    assert options == expected
    # what it returns is what memory_dialogues takes
    assert len(memory_dialogues(2, seed=0, **options)) == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "non-empty"),
        ("facts=2", "unknown memory option 'facts'"),
        ("num_facts=2,num_facts=3", "appears twice"),
        ("num_facts", "num_facts=N or num_facts=LOW-HIGH"),
        ("num_updates=one", "num_updates=N or"),
        ("num_updates=-1", "num_updates=N or"),
        ("num_facts=0", "num_facts must be"),
        ("distractor_turns=3-1", "distractor_turns must be"),
        ("num_facts=2,", "unknown memory option ''"),
    ],
    ids=["empty", "unknown", "twice", "no-value", "word", "negative", "facts-0", "reversed",
         "trailing-comma"],
)
def test_parse_memory_options_rejects_bad_text(text, message):
    with pytest.raises(ValueError, match=message):
        parse_memory_options(text)


# Mixing -----------------------------------------------------------------------------------


def _source(name: str, n: int) -> list[Dialogue]:
    return [Dialogue(f"{name}/{i}", [Event("user", f"{name} {i}")]) for i in range(n)]


def test_mix_shares_follow_weights_and_repeat_only_small_sources():
    sources = {"a": _source("a", 100), "b": _source("b", 10), "c": _source("c", 50)}
    got = mix_dialogues(sources, {"a": 1, "b": 2, "c": 1}, total=400, seed=0)
    shares = Counter(d.name.split("/")[0] for d in got)
    assert shares == {"a": 100, "b": 200, "c": 100}, shares
    assert len({d.name for d in got}) == 400, "names must stay unique"
    copies = Counter(d.name.split("#")[0] for d in got if d.name.startswith("b/"))
    assert set(copies.values()) == {20}, f"stratified: every b dialogue 20 times, got {copies}"
    a_names = [d.name for d in got if d.name.startswith("a/")]
    assert not any("#" in n for n in a_names) and len(set(a_names)) == 100


@pytest.mark.parametrize("total", [1, 7, 100, 333], ids=lambda t: f"total{t}")
def test_mix_shares_are_within_one_of_exact(total):
    sources = {"a": _source("a", 500), "b": _source("b", 500), "c": _source("c", 500)}
    weights = {"a": 1.0, "b": 2.5, "c": 0.5}
    got = mix_dialogues(sources, weights, total=total, seed=3)
    assert len(got) == total
    shares = Counter(d.name.split("/")[0] for d in got)
    for name, w in weights.items():
        exact = total * w / 4.0
        assert abs(shares[name] - exact) < 1, f"{name}: {shares[name]} vs exact {exact:.2f}"


def test_mix_is_seeded():
    sources = {"a": _source("a", 30), "b": _source("b", 30)}
    weights = {"a": 1, "b": 1}
    one = mix_dialogues(sources, weights, total=20, seed=0)
    assert one == mix_dialogues(sources, weights, total=20, seed=0)
    assert [d.name for d in one] != [d.name for d in mix_dialogues(sources, weights, 20, seed=1)]


def test_mix_rejects_bad_arguments():
    sources = {"a": _source("a", 3)}
    with pytest.raises(ValueError, match="weights must name exactly the sources"):
        mix_dialogues(sources, {"b": 1}, total=2, seed=0)
    with pytest.raises(ValueError, match="at least one weight must be positive"):
        mix_dialogues(sources, {"a": 0}, total=2, seed=0)
    with pytest.raises(ValueError, match="finite number >= 0"):
        mix_dialogues(sources, {"a": float("nan")}, total=2, seed=0)
    with pytest.raises(DataError, match="'e' has no dialogues"):
        mix_dialogues({"a": _source("a", 3), "e": []}, {"a": 1, "e": 1}, total=2, seed=0)


def test_load_dialogues_mixes_a_jsonl_file_with_memory(tmp_path):
    rows = [{"output": [_s("user", f"hi {i}"), _s("gpt", "hello.")]} for i in range(12)]
    path = _write_jsonl(tmp_path / "rows.jsonl", rows)
    got = load_dialogues(f"memory:2,{path}:1", seed=5)
    shares = Counter("memory" if d.name.startswith("memory/") else "jsonl" for d in got)
    # total=None: the largest mix that repeats no file row; memory fills its share.
    assert shares == {"jsonl": 12, "memory": 24}, shares
    assert got == load_dialogues(f"memory:2,{path}:1", seed=5)
    fixed = load_dialogues(f"{path}:1,memory", total=40, n_memory=5, seed=5)
    names = Counter(d.name.split("#")[0] for d in fixed if d.name.startswith("memory/"))
    assert len(names) == 5 and sum(names.values()) == 20, names


@pytest.mark.parametrize(
    "spec, message",
    [
        ("wikipedia:1", "unknown dialogue source 'wikipedia'"),
        ("chatterbot:1,,memory:1", "empty entry"),
        ("memory:lots", "weight 'lots' of 'memory'"),
        ("memory:0", "must be > 0"),
        ("memory:1,memory:2", "appears twice"),
        ("memory:1", "only synthetic memory dialogues"),
    ],
    ids=["unknown", "empty", "weight-word", "weight-zero", "twice", "memory-only"],
)
def test_load_dialogues_spec_errors(spec, message):
    with pytest.raises(DataError) as info:
        load_dialogues(spec)
    assert message in str(info.value), str(info.value)
    if "unknown" in message:
        assert "chatterbot, memory, shakespeare" in str(info.value)


def test_load_dialogues_memory_only_with_total():
    got = load_dialogues("memory", total=9, seed=2)
    assert got == mix_dialogues({"memory": memory_dialogues(9, seed=2)}, {"memory": 1}, 9, 2)


# Real corpora (network on first use) -------------------------------------------------------


@pytest.mark.slow
def test_real_chatterbot_corpus():
    got = load_chatterbot(progress=False)
    events = sum(len(d.events) for d in got)
    chars = sum(len(e.text) for d in got for e in d.events)
    assert (len(got), events) == (2025, 4331), (len(got), events, chars)
    assert len({d.name for d in got}) == len(got)
    assert _pairs(got[0])[0] == ("user", "What is AI?", False)
    assert got[0].name == "chatterbot/ai.yml:5"
    assert all(e.text for d in got for e in d.events)


@pytest.mark.slow
def test_real_shakespeare_dialogues():
    got = load_shakespeare_dialogues(progress=False)
    events = sum(len(d.events) for d in got)
    assert len(got) == 1161 and events == 30456, (len(got), events)
    assert len({d.name for d in got}) == len(got)
    assert all(2 <= len(d.events) <= 40 for d in got)
    hamlet = next(d for d in got if d.name == "shakespeare/hamlet/1:0")
    assert [e.text for e in hamlet.events[:3]] == [
        "Who's there?", "Nay, answer me: stand, and unfold yourself.", "Long live the king!"
    ]  # fmt: skip
    assert not any("[" in e.text or "]" in e.text for d in got for e in d.events)


@pytest.mark.slow
def test_real_default_mix():
    got = load_dialogues(DEFAULT_DUPLEX_MIX, progress=False)
    shares = Counter(d.name.split("/")[0] for d in got)
    assert shares == {"chatterbot": 2025, "shakespeare": 1012, "memory": 3038}, shares


def test_mix_sources(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    assert mix_sources(f"chatterbot:2,memory:3,{rows}") == ["chatterbot", "memory", str(rows)]
    assert mix_sources("memory:1") == ["memory"]
    with pytest.raises(DataError, match="appears twice"):
        mix_sources("memory:1,memory:2")
