"""Synthetic memory dialogues: seeding, probes on the latest value, unambiguous vocabulary,
the counts asked for, and the options parsed from text."""

from __future__ import annotations

from collections import Counter

import pytest

from assoclm.duplex.sources import memory, memory_dialogues, parse_memory_options

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
    dialogue, facts = memory.memory_dialogue(11, index, *spans)
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
        _, facts = memory.memory_dialogue(seed, index, (3, 6), (2, 5), (0, 0), (0, 0))
        words = sorted({f.subject for f in facts}) + [v for f in facts for v in f.values]
        low = [w.lower() for w in words]
        for i, a in enumerate(low):
            for b in low[i + 1 :]:
                assert a not in b and b not in a, f"seed {seed} dialogue {index}: {words}"


def test_memory_corrections_say_so():
    corrected = 0
    for index in range(40):
        dialogue, facts = memory.memory_dialogue(5, index, (2, 4), (1, 3), (0, 0), (0, 0))
        for fact in facts:
            for at in fact.mentions[1:]:
                assert dialogue.events[at].text.startswith(
                    tuple(prefix for prefix, _ in memory.CORRECTIONS)
                ), dialogue.events[at].text
                corrected += 1
    assert corrected >= 40


@pytest.mark.parametrize(
    "facts, updates, chat, gap",
    [(1, 0, 0, None), (3, 2, 1, None), (5, 7, 2, 4), (2, 3, 0, 6), (4, 1, 5, 0)],
    ids=lambda v: str(v),
)
def test_memory_counts_are_respected(facts, updates, chat, gap):
    small_talk = {user for user, _ in memory.SMALL_TALK}
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
