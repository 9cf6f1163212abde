"""Duplex stream builder: exact streams for handcrafted sessions, synthetic interrupts and
invariants on random dialogues."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assoclm.duplex import stream as duplex
from assoclm.duplex.protocol import Dialogue, Event, Probe
from assoclm.duplex.stream import (
    DEFAULT_INTERJECTIONS,
    DuplexStream,
    LossWeights,
    build_stream,
    build_streams,
    synthesize_interrupts,
)
from assoclm.tokenizer import CONTROL_TOKENS, BPETokenizer, ByteTokenizer

TOK = ByteTokenizer()
C = {name: TOK.control_id(name) for name in CONTROL_TOKENS}


def token_id(symbol: str) -> int:
    """``"[USER]"`` -> its control id; a one-character string -> its byte id (byte + 9)."""
    if symbol in C:
        return C[symbol]
    (byte,) = symbol.encode("utf-8")
    return byte + 9


def symbol(token: int) -> str:
    """Inverse of ``token_id``, written independently of the module's ``token_name``."""
    return CONTROL_TOKENS[token] if token < 9 else chr(token - 9)


def parse(expected: str) -> list[tuple[str, str, float]]:
    """Rows ``input target weight`` (whitespace-separated, one per line) -> triples."""
    rows = []
    for line in expected.strip().splitlines():
        x, y, w = line.split()
        rows.append((x, y, float(w)))
    return rows


def assert_stream(stream: DuplexStream, expected: str) -> None:
    """The stream equals ``expected`` position by position: ids, targets and float32 weights."""
    rows = parse(expected)
    want_x = np.array([token_id(x) for x, _, _ in rows], dtype=np.int64)
    want_y = np.array([token_id(y) for _, y, _ in rows], dtype=np.int64)
    want_w = np.array([w for _, _, w in rows], dtype=np.float32)
    got = [
        (symbol(x), symbol(y), float(w))
        for x, y, w in zip(stream.input_ids, stream.target_ids, stream.weights)
    ]
    want = [(x, y, float(np.float32(w))) for x, y, w in rows]
    assert stream.input_ids.dtype == np.int64 and stream.target_ids.dtype == np.int64
    assert stream.weights.dtype == np.float32
    if got != want:
        first = next((i for i, (g, e) in enumerate(zip(got, want)) if g != e), min(len(got),
                                                                                  len(want)))
        pytest.fail(
            f"stream {stream.name!r} differs from row {first} on (lengths: got {len(got)}, "
            f"expected {len(want)})\ngot:      {got[first:first + 4]}\n"
            f"expected: {want[first:first + 4]}\nfull stream:\n{stream.table(TOK)}"
        )
    np.testing.assert_array_equal(stream.input_ids, want_x)
    np.testing.assert_array_equal(stream.target_ids, want_y)
    np.testing.assert_array_equal(stream.weights, want_w)


def dialogue(*events: Event, name: str = "d") -> Dialogue:
    return Dialogue(name, events)


def user(text: str) -> Event:
    return Event("user", text)


def model(text: str, interrupted: bool = False) -> Event:
    return Event("model", text, interrupted)


# Exact streams, one per case of the protocol table and of the module docstring's decisions.

def test_two_exchanges():
    stream = build_stream(dialogue(user("hi"), model("yo"), user("k"), model("ok")), TOK)
    assert stream.name == "d"
    assert_stream(stream, """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        h              [LISTEN]       0.05
        i              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        y              1
        y              o              1
        o              [MODEL_END]    1
        [MODEL_END]    [USER]         1
        [USER]         [LISTEN]       0.05
        k              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        o              1
        o              k              1
        k              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_two_user_events_in_a_row():
    stream = build_stream(dialogue(user("ab"), user("c"), model("d")), TOK)
    assert_stream(stream, """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [LISTEN]       0.05
        b              [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        c              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        d              1
        d              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_empty_user_event_then_empty_model_event():
    stream = build_stream(dialogue(user(""), model(""), user("a"), model("b")), TOK)
    assert_stream(stream, """
        [SESSION]      [LISTEN]       0.05
        [USER]         [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        [MODEL_END]    1
        [MODEL_END]    [USER]         1
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              1
        b              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_empty_user_event_before_another_user_event_listens():
    stream = build_stream(dialogue(user(""), user("a"), model("b")), TOK)
    assert_stream(stream, """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              1
        b              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_interrupt_in_the_data():
    stream = build_stream(dialogue(user("a"), model("bc", interrupted=True), user("d"),
                                   model("e")), TOK)
    assert_stream(stream, """
        [SESSION]         [LISTEN]       0.05
        [USER]            [LISTEN]       0.05
        a                 [USER_END]     1
        [USER_END]        [MODEL]        1
        [MODEL]           b              1
        b                 c              1
        c                 [PAD]          0
        [USER_INTERRUPT]  [MODEL_END]    1
        [MODEL_END]       [USER]         1
        [USER]            [LISTEN]       0.05
        d                 [USER_END]     1
        [USER_END]        [MODEL]        1
        [MODEL]           e              1
        e                 [MODEL_END]    1
        [MODEL_END]       [SESSION_END]  1
        [SESSION_END]     [PAD]          0
    """)


def test_interrupt_before_the_first_model_token():
    stream = build_stream(dialogue(user("a"), model("", interrupted=True), user(""),
                                   model("e")), TOK)
    assert_stream(stream, """
        [SESSION]         [LISTEN]       0.05
        [USER]            [LISTEN]       0.05
        a                 [USER_END]     1
        [USER_END]        [MODEL]        1
        [MODEL]           [PAD]          0
        [USER_INTERRUPT]  [MODEL_END]    1
        [MODEL_END]       [USER]         1
        [USER]            [USER_END]     1
        [USER_END]        [MODEL]        1
        [MODEL]           e              1
        e                 [MODEL_END]    1
        [MODEL_END]       [SESSION_END]  1
        [SESSION_END]     [PAD]          0
    """)


def test_session_ends_after_a_model_turn():
    assert_stream(build_stream(dialogue(user("a"), model("b")), TOK), """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              1
        b              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_session_ends_on_a_user_event():
    assert_stream(build_stream(dialogue(user("a"), model("b"), user("cd")), TOK), """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              1
        b              [MODEL_END]    1
        [MODEL_END]    [USER]         1
        [USER]         [LISTEN]       0.05
        c              [LISTEN]       0.05
        d              [PAD]          0
        [SESSION_END]  [PAD]          0
    """)


def test_session_ends_on_an_empty_user_event():
    assert_stream(build_stream(dialogue(user("a"), model("b"), user("")), TOK), """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              1
        b              [MODEL_END]    1
        [MODEL_END]    [USER]         1
        [USER]         [PAD]          0
        [SESSION_END]  [PAD]          0
    """)


def test_session_cut_off_during_an_interrupted_last_model_event():
    assert_stream(build_stream(dialogue(user("a"), model("bc", interrupted=True)), TOK), """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              1
        b              c              1
        c              [PAD]          0
        [SESSION_END]  [PAD]          0
    """)


def test_dialogue_starting_with_the_model_gets_an_empty_user_turn():
    assert_stream(build_stream(dialogue(model("a"), user("b"), model("c")), TOK), """
        [SESSION]      [LISTEN]       0.05
        [USER]         [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        a              1
        a              [MODEL_END]    1
        [MODEL_END]    [USER]         1
        [USER]         [LISTEN]       0.05
        b              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        c              1
        c              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_two_model_events_in_a_row_get_an_empty_user_turn_between():
    assert_stream(build_stream(dialogue(user("a"), model("b"), model("c")), TOK), """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              1
        b              [MODEL_END]    1
        [MODEL_END]    [USER]         1
        [USER]         [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        c              1
        c              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_interrupted_model_event_followed_by_a_model_event_is_an_error():
    bad = dialogue(user("a"), model("b", interrupted=True), model("c"), name="bad-one")
    with pytest.raises(ValueError, match=r"'bad-one'.*event 1 .*interrupted.*event 2"):
        build_stream(bad, TOK)


def test_empty_dialogue_is_an_error():
    with pytest.raises(ValueError, match="'nothing' has no events"):
        build_stream(Dialogue("nothing", ()), TOK)


def test_control_names_typed_as_text_stay_bytes():
    stream = build_stream(dialogue(user("[USER]"), model("[MODEL_END]")), TOK)
    x = stream.input_ids
    assert x.tolist() == [
        C["[SESSION]"], C["[USER]"], *TOK.encode("[USER]"), C["[USER_END]"], C["[MODEL]"],
        *TOK.encode("[MODEL_END]"), C["[MODEL_END]"], C["[SESSION_END]"],
    ]
    assert (x == C["[USER]"]).sum() == 1 and (x == C["[MODEL_END]"]).sum() == 1


def test_resets_only_at_session_start():
    stream = build_stream(dialogue(user("a"), model("b"), user("c"), model("d")), TOK)
    assert stream.resets.tolist() == [True] + [False] * (len(stream) - 1)


def test_docstring_worked_example_is_exact():
    example = dialogue(user("hi"), model("abc", interrupted=True), user("no"), model("ok"))
    table = build_stream(example, TOK).table(TOK)
    indented = "\n".join("    " + line for line in table.splitlines())
    assert indented + "\n\n" in duplex.__doc__, f"docstring example is stale; now:\n{table}"
    # The table itself, read back with this file's own parser (not the module's renderer).
    rows = "\n".join(re.sub(r"'(.)'", r"\1", line.split(None, 1)[1])
                     for line in table.splitlines()[1:])
    assert_stream(build_stream(example, TOK), rows)


# Loss weights.

def test_default_weights():
    assert LossWeights() == LossWeights(listen=0.05, control=1.0, content=1.0, answer=1.0)
    example = dialogue(user("hi"), model("abc", interrupted=True), user("no"), model("ok"))
    stream = build_stream(example, TOK)
    by_target: dict[str, set[float]] = {}
    for y, w in zip(stream.target_ids, stream.weights):
        kind = symbol(y) if y < 9 else "text"
        by_target.setdefault(kind, set()).add(float(w))
    assert by_target == {
        "[LISTEN]": {float(np.float32(0.05))}, "[USER_END]": {1.0}, "[MODEL]": {1.0},
        "text": {1.0}, "[MODEL_END]": {1.0}, "[USER]": {1.0}, "[SESSION_END]": {1.0},
        "[PAD]": {0.0},
    }


def test_custom_weights():
    custom = LossWeights(listen=0.5, control=2.0, content=0.25)
    stream = build_stream(dialogue(user("a"), model("bc", interrupted=True), user("d"),
                                   model("e")), TOK, custom)
    assert_stream(stream, """
        [SESSION]         [LISTEN]       0.5
        [USER]            [LISTEN]       0.5
        a                 [USER_END]     2
        [USER_END]        [MODEL]        2
        [MODEL]           b              0.25
        b                 c              0.25
        c                 [PAD]          0
        [USER_INTERRUPT]  [MODEL_END]    2
        [MODEL_END]       [USER]         2
        [USER]            [LISTEN]       0.5
        d                 [USER_END]     2
        [USER_END]        [MODEL]        2
        [MODEL]           e              0.25
        e                 [MODEL_END]    2
        [MODEL_END]       [SESSION_END]  2
        [SESSION_END]     [PAD]          0
    """)


def test_answer_weight_covers_only_the_probed_model_event():
    # Events 1 and 3 are model turns; only event 3 answers a memory question.
    probed = Dialogue("probed", (user("a"), model("bc"), user("d"), model("ef")),
                      (Probe(3, "ef", "untouched"),))
    stream = build_stream(probed, TOK, LossWeights(content=0.5, answer=4.0))
    assert_stream(stream, """
        [SESSION]      [LISTEN]       0.05
        [USER]         [LISTEN]       0.05
        a              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        b              0.5
        b              c              0.5
        c              [MODEL_END]    1
        [MODEL_END]    [USER]         1
        [USER]         [LISTEN]       0.05
        d              [USER_END]     1
        [USER_END]     [MODEL]        1
        [MODEL]        e              4
        e              f              4
        f              [MODEL_END]    1
        [MODEL_END]    [SESSION_END]  1
        [SESSION_END]  [PAD]          0
    """)


def test_answer_weight_follows_the_probe_past_a_synthetic_interrupt():
    probed = Dialogue("probed", (user("q"), model("x y")), (Probe(1, "y", "untouched"),))
    cut = synthesize_interrupts(probed, 1.0, np.random.default_rng(0))
    stream = build_stream(cut, TOK, LossWeights(answer=3.0))
    model_opens = np.flatnonzero(stream.input_ids == C["[MODEL]"])
    assert len(model_opens) == 2, f"expected a cut turn and its full copy; got {model_opens}"
    # The cut prefix is ordinary model text; the full copy (the probed event) is the answer.
    assert float(stream.weights[model_opens[0]]) == 1.0
    assert float(stream.weights[model_opens[1]]) == 3.0


@pytest.mark.parametrize("field", ["listen", "control", "content", "answer"])
@pytest.mark.parametrize("value", [-0.1, math.nan, math.inf, True, "1"],
                         ids=["negative", "nan", "inf", "bool", "str"])
def test_bad_weights_name_the_field(field, value):
    message = rf"LossWeights\.{field} must be .*got {re.escape(repr(value))}"
    with pytest.raises(ValueError, match=message):
        LossWeights(**{field: value})


def test_zero_weights_are_allowed():
    stream = build_stream(dialogue(user("a"), model("b")), TOK, LossWeights(0, 0, 0))
    assert not stream.weights.any()


# Synthetic interrupts.

QA = Dialogue(
    "qa",
    (
        user("my name is Ada"),
        model("nice to meet you Ada"),
        user("what is two plus two"),
        model("four"),
        model("  it is four,  surely "),
        user("and my name?"),
        model("your name is Ada"),
        model("half of it", interrupted=True),
        user("stop"),
    ),
    (Probe(6, "Ada", "untouched"), Probe(1, "Ada", "untouched")),
)


def test_p_zero_is_the_identity():
    rng = np.random.default_rng(0)
    assert synthesize_interrupts(QA, 0.0, rng) == QA


def test_p_one_cuts_every_eligible_model_event():
    result = synthesize_interrupts(QA, 1.0, np.random.default_rng(3))
    eligible = [1, 4, 6]  # model, not interrupted, at least two words
    assert len(result.events) == len(QA.events) + 2 * len(eligible)
    new = list(result.events)
    for old_index, event in enumerate(QA.events):
        if old_index not in eligible:
            assert new.pop(0) == event
            continue
        cut, said, full = new.pop(0), new.pop(0), new.pop(0)
        assert full == event
        assert said.role == "user" and said.text in DEFAULT_INTERJECTIONS
        assert cut.role == "model" and cut.interrupted
        words, kept = event.text.split(), cut.text.split()
        assert 1 <= len(kept) < len(words), f"cut {cut.text!r} of {event.text!r}"
        # A prefix of the original text that ends exactly at the end of a word.
        assert event.text.startswith(cut.text) and event.text[len(cut.text)].isspace()
        assert kept == words[:len(kept)]
    stream = build_stream(result, TOK)
    assert (stream.input_ids == C["[USER_INTERRUPT]"]).sum() == len(eligible) + 1


def test_probes_follow_the_full_model_event():
    result = synthesize_interrupts(QA, 1.0, np.random.default_rng(0))
    for old, new in zip(QA.probes, result.probes):
        assert result.events[new.event_index] == QA.events[old.event_index]
        assert not result.events[new.event_index].interrupted
        assert (new.answer, new.kind) == (old.answer, old.kind)
    assert [p.event_index for p in result.probes] == [12, 3]


def test_synthesis_is_deterministic_under_a_seed():
    runs = [synthesize_interrupts(QA, 0.5, np.random.default_rng(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    outcomes = {synthesize_interrupts(QA, 0.5, np.random.default_rng(s)) for s in range(20)}
    assert len(outcomes) > 1, "different seeds never gave different interrupts"


def test_build_streams_is_deterministic_and_order_free():
    dialogues = [Dialogue(f"d{i}", QA.events, QA.probes) for i in range(6)]
    first = build_streams(dialogues, TOK, p_interrupt=0.5, seed=1)
    again = build_streams(dialogues, TOK, p_interrupt=0.5, seed=1)
    backwards = build_streams(dialogues[::-1], TOK, p_interrupt=0.5, seed=1)[::-1]
    other = build_streams(dialogues, TOK, p_interrupt=0.5, seed=2)
    for a, b, c in zip(first, again, backwards):
        assert a.name == b.name == c.name
        for key in ("input_ids", "target_ids", "weights"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
            np.testing.assert_array_equal(getattr(a, key), getattr(c, key), err_msg=key)
    assert [len(s) for s in first] != [len(s) for s in other]
    plain = build_streams(dialogues, TOK, p_interrupt=0.0)
    np.testing.assert_array_equal(plain[0].input_ids, build_stream(dialogues[0], TOK).input_ids)


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, "0.5"])
def test_bad_probability_names_the_value(p):
    with pytest.raises(ValueError, match=rf"p_interrupt must be .*\[0, 1\].*{re.escape(repr(p))}"):
        synthesize_interrupts(QA, p, np.random.default_rng(0))
    with pytest.raises(ValueError, match=re.escape(repr(p))):
        build_streams([QA], TOK, p_interrupt=p)


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_bad_seed_names_the_value(seed):
    with pytest.raises(ValueError, match=rf"seed must be .*got {re.escape(repr(seed))}"):
        build_streams([QA], TOK, seed=seed)


@pytest.mark.parametrize("interjections", [(), "wait"], ids=["empty", "bare-string"])
def test_bad_interjections(interjections):
    with pytest.raises(ValueError, match="interjections"):
        synthesize_interrupts(QA, 0.5, np.random.default_rng(0), interjections)


def test_bpe_tokenizer_streams_the_same_structure():
    bpe = BPETokenizer.train(["hello there", "hello again", "there there"] * 5, vocab_size=300)
    stream = build_stream(dialogue(user("hello"), model("hello there")), bpe)
    x = stream.input_ids.tolist()
    u, m = bpe.encode("hello"), bpe.encode("hello there")
    assert x == [C["[SESSION]"], C["[USER]"], *u, C["[USER_END]"], C["[MODEL]"], *m,
                 C["[MODEL_END]"], C["[SESSION_END]"]]
    assert stream.target_ids.tolist() == (
        [C["[LISTEN]"]] * (1 + len(u)) + [C["[USER_END]"], C["[MODEL]"], *m, C["[MODEL_END]"],
                                           C["[SESSION_END]"], C["[PAD]"]]
    )


# Invariants on random dialogues.

TEXTS = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.sampled_from(["", "[USER]", "[MODEL_END] x", "a b c", " two  words "]),
)


@st.composite
def dialogues(draw) -> Dialogue:
    raw = draw(st.lists(st.tuples(st.booleans(), TEXTS, st.booleans()), min_size=1, max_size=7))
    events = []
    for index, (is_user, text, interrupted) in enumerate(raw):
        following_is_model = index + 1 < len(raw) and not raw[index + 1][0]
        cut = not is_user and interrupted and not following_is_model
        events.append(Event("user" if is_user else "model", text, cut))
    models = [i for i, e in enumerate(events) if e.role == "model"]
    chosen = draw(st.lists(st.sampled_from(models))) if models else []
    probes = [Probe(i, "x", "untouched") for i in chosen]
    return Dialogue("random", tuple(events), tuple(probes))


def check_invariants(d: Dialogue, stream: DuplexStream, weights: LossWeights) -> None:
    x, y, w = stream.input_ids, stream.target_ids, stream.weights
    n = len(x)
    assert len(y) == n and len(w) == n
    assert x[0] == C["[SESSION]"] and x[-1] == C["[SESSION_END]"]
    assert (x == C["[SESSION]"]).sum() == 1 and (x == C["[SESSION_END]"]).sum() == 1
    assert not np.isin(x, [C["[PAD]"], C["[LISTEN]"]]).any()
    following = np.append(x[1:], -1)

    # The user holds the floor from [SESSION]/[USER] up to the next other control input.
    user_side, holder = np.zeros(n, dtype=bool), "model"
    for i, token in enumerate(x):
        if token < 9:
            holder = "user" if token in (C["[SESSION]"], C["[USER]"]) else "model"
        user_side[i] = holder == "user"

    cut = (following == -1) | (following == C["[USER_INTERRUPT]"]) | (
        (following == C["[SESSION_END]"]) & (x != C["[MODEL_END]"]))
    np.testing.assert_array_equal(y == C["[PAD]"], cut, err_msg="[PAD] targets")
    listens = np.isin(y, [C["[LISTEN]"], C["[USER_END]"]])
    np.testing.assert_array_equal(listens, user_side & ~cut, err_msg="user-stream positions")
    # Every other target is the next input: what the model itself said next.
    spoken = ~cut & ~user_side
    np.testing.assert_array_equal(y[spoken], following[spoken], err_msg="model-side targets")
    ends = y == C["[USER_END]"]
    np.testing.assert_array_equal(y[ends], following[ends], err_msg="[USER_END] targets")

    # A probed model event's answer: from its [MODEL] input up to the next control input.
    model_events = [i for i, e in enumerate(d.events) if e.role == "model"]
    probed = {p.event_index for p in d.probes}
    in_answer, inside, turn = np.zeros(n, dtype=bool), False, 0
    for i, token in enumerate(x):
        if token == C["[MODEL]"]:
            inside = model_events[turn] in probed
            turn += 1
        elif token < 9:
            inside = False
        in_answer[i] = inside
    want_w = np.select(
        [y == C["[PAD]"], y == C["[LISTEN]"], y < 9, in_answer],
        [0.0, weights.listen, weights.control, weights.answer], weights.content,
    ).astype(np.float32)
    np.testing.assert_array_equal(w, want_w, err_msg="weights")
    if min(weights.listen, weights.control, weights.content, weights.answer) > 0:
        before_interrupt = following == C["[USER_INTERRUPT]"]
        np.testing.assert_array_equal(w == 0, (y == C["[PAD]"]) | before_interrupt)

    # Text round-trips between control tokens: no control id comes from text, none is lost.
    runs, opener, run = [], None, []
    for token in x.tolist() + [C["[PAD]"]]:
        if token >= 9:
            run.append(token)
            continue
        if run:
            runs.append((opener, TOK.decode(run)))
            run = []
        opener = token
    assert runs == [(C["[USER]"] if e.role == "user" else C["[MODEL]"], e.text)
                    for e in d.events if e.text]
    roles = [e.role for e in d.events]
    empty_user_turns = sum(r == "model" and (i == 0 or roles[i - 1] == "model")
                           for i, r in enumerate(roles))
    assert (x == C["[USER]"]).sum() == roles.count("user") + empty_user_turns
    assert (x == C["[MODEL]"]).sum() == roles.count("model")
    interrupts = sum(e.interrupted for e in d.events[:-1])
    assert (x == C["[USER_INTERRUPT]"]).sum() == interrupts


# width=32: every drawn weight is exact in float32, so a positive one never rounds to 0.
WEIGHTS = st.builds(LossWeights, *[st.floats(0, 4, width=32)] * 4)


@settings(max_examples=150, deadline=None)
@given(d=dialogues(), weights=WEIGHTS)
def test_invariants_on_random_dialogues(d, weights):
    check_invariants(d, build_stream(d, TOK, weights), weights)


@settings(max_examples=100, deadline=None)
@given(d=dialogues(), p=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_invariants_after_synthetic_interrupts(d, p, seed):
    result = synthesize_interrupts(d, p, np.random.default_rng(seed))
    check_invariants(result, build_stream(result, TOK), LossWeights())
    assert result.name == d.name
    for old, new in zip(d.probes, result.probes):
        assert result.events[new.event_index] == d.events[old.event_index]
    # Aligned with the original, each extra event is part of an inserted (cut, interjection)
    # pair right before the full copy of the event that was cut.
    new, i = list(result.events), 0
    for event in d.events:
        if new[i] != event:
            cut, said = new[i], new[i + 1]
            assert cut.role == "model" and cut.interrupted and event.text.startswith(cut.text)
            assert said.role == "user" and said.text in DEFAULT_INTERJECTIONS
            i += 2
        assert new[i] == event
        i += 1
    assert i == len(new)
