"""chatterbot-corpus YAML read with PyYAML: the quoting and folding forms the corpus uses,
plain scalars kept as text, the structure checks, malformed YAML as DataError naming file
and line, and the real corpus (network on first use, slow-marked)."""

from __future__ import annotations

import pytest

from assoclm.data.corpora import DataError
from assoclm.duplex.sources import chatterbot, load_chatterbot, parse_chatterbot_yaml
from tests.duplex.sources.helpers import fake_corpus, pairs

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


def test_chatterbot_plain_scalars_stay_text():
    values = ["yes", "no", "on", "true", "42", "0x1F", "1.5", ".inf", "null", "~", "2001-01-01"]
    text = "conversations:\n- - " + "\n  - ".join(values) + "\n"
    assert parse_chatterbot_yaml(text, "f.yml") == [(2, values)]


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("conversations:\n- -\n- - b\n", 2, "empty list item"),
        ("conversations:\n- - a\n  -\n", 3, "empty list item"),
        ("conversations:\n- []\n", 2, "empty conversation"),
        ("conversations:\n- - a\nconversations:\n- - b\n", 3, "duplicate key 'conversations'"),
        ("- - a\n", 1, "the top level must be a mapping with a 'conversations' key; found a list"),
        ("categories:\n- x\n", None, "'conversations' must be a list of lists; found nothing"),
        ("conversations: hello\n", None, "must be a list of lists; found str"),
        ("conversations:\n- a: b\n", 2, "a conversation must be a list of lines of text, got a "
                                        "mapping"),
        ("conversations:\n- - a\n  - - nested\n", 3, "expected a line of text, got a list"),
        ("conversations:\n- - Note: this is a mapping\n", 2, "expected a line of text, got a "
                                                             "mapping (quote text that holds"),
        ("conversations:\n- - a\n  - an answer: with a colon\n", 3, "got a mapping"),
        ("conversations:\n- - !!int 42\n", 2, "expected a line of text, got int"),
        ("", 1, "holds no YAML content"),
        ("# only a comment\n", 1, "holds no YAML content"),
    ],
    ids=["empty-item", "empty-item-2", "empty-conversation", "duplicate", "top-list",
         "no-conversations", "scalar-conversations", "mapping-conversation", "nested-list",
         "colon", "colon-2", "tagged-int", "empty", "comment-only"],
)  # fmt: skip
def test_chatterbot_parser_checks_the_structure(text, line, message):
    with pytest.raises(DataError) as info:
        parse_chatterbot_yaml(text, "f.yml")
    prefix = "f.yml:" if line is None else f"f.yml:{line}: "
    assert str(info.value).startswith(prefix), str(info.value)
    assert message in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("conversations:\n- - a\n\t- b\n", 3, "found character '\\t' that cannot start"),
        ("conversations:\n- - a\n  - 'never closed\n", 4,
         "unexpected end of stream (while scanning a quoted scalar on line 3)"),
        ('conversations:\n- - "bad \\q escape"\n', 2, "unknown escape character 'q'"),
        ("conversations:\n- - 'done' and more\n", 2, "expected <block end>"),
        ("conversations:\n- - 'a'\n    - b\n", 3, "expected <block end>"),
        ("conversations:\n- - a\n---\nconversations:\n- - b\n", 3, "another document"),
        ("conversations:\n- - a\x01b\n", 2, "character U+0001 is not allowed"),
        # A safe loader: no Python objects, whatever the tag asks for.
        ("conversations:\n- - !!python/object/apply:os.system [echo hi]\n", 2,
         "could not determine a constructor"),
    ],
    ids=["tab", "unclosed", "escape", "after-quote", "indent", "two-documents", "control-char",
         "python-tag"],
)  # fmt: skip
def test_chatterbot_malformed_yaml_names_file_and_line(text, line, message):
    with pytest.raises(DataError) as info:
        parse_chatterbot_yaml(text, "f.yml")
    assert str(info.value).startswith(f"f.yml:{line}: not valid YAML: "), str(info.value)
    assert message in str(info.value), str(info.value)


def test_chatterbot_parser_reads_standard_yaml_the_corpus_does_not_use():
    text = ("---\ncategories: [a, b]\nconversations:\n- [hi, 'there']\n- - &q Why?\n  - *q\n"
            "- - >\n    folded\n    text\n  - |2\n     indented\n")  # fmt: skip
    assert parse_chatterbot_yaml(text, "f.yml") == [
        (4, ["hi", "there"]),
        (5, ["Why?", "Why?"]),
        (7, ["folded text\n", " indented\n"]),
    ]


def test_load_chatterbot_alternates_user_and_model(monkeypatch, tmp_path):
    yml = "conversations:\n- - Hi\n  - Hello\n  - How are you?\n- - Bye\n  - '  See you  '\n"
    fake_corpus(monkeypatch, tmp_path, chatterbot, {"greetings.yml": yml})
    got = load_chatterbot()
    assert [d.name for d in got] == ["chatterbot/greetings.yml:2", "chatterbot/greetings.yml:5"]
    assert pairs(got[0]) == [("user", "Hi", False), ("model", "Hello", False),
                             ("user", "How are you?", False)]  # fmt: skip
    assert pairs(got[1]) == [("user", "Bye", False), ("model", "See you", False)]


@pytest.mark.slow
def test_real_chatterbot_corpus():
    got = load_chatterbot(progress=False)
    events = sum(len(d.events) for d in got)
    chars = sum(len(e.text) for d in got for e in d.events)
    assert (len(got), events) == (2025, 4331), (len(got), events, chars)
    assert len({d.name for d in got}) == len(got)
    assert pairs(got[0])[0] == ("user", "What is AI?", False)
    assert got[0].name == "chatterbot/ai.yml:5"
    assert all(e.text for d in got for e in d.events)


@pytest.mark.slow
def test_real_chatterbot_skips_the_folded_trivia_question():
    """trivia.yml line 35 misses its "- ": YAML folds question and answer into one string,
    which is skipped; the conversations around it keep the lines they start on."""
    got = {d.name: d for d in load_chatterbot(progress=False)}
    assert "chatterbot/trivia.yml:35" not in got
    assert "chatterbot/trivia.yml:33" in got
    after = got["chatterbot/trivia.yml:37"]
    assert pairs(after) == [
        ("user", "According to Greek mythology who was the first woman on earth?", False),
        ("model", "Pandora", False),
    ]
