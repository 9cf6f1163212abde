"""The English conversations of chatterbot-corpus 1.3.3 (BSD-3-Clause), one dialogue each.

The pinned sdist is fetched once with ``fetch_corpus("chatterbot-corpus")``; nothing here
talks to a model or data-set hub (docs/ARCHITECTURE.md, "Data policy"). Its YAML files are
read with PyYAML's safe loader, changed to keep every plain scalar as text and to remember
the line each list item starts on: a dialogue is named by its file and that line, and the
held-out split and the duplex mix depend on those names.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from assoclm.data.corpora import DataError, fetch_corpus
from assoclm.data.text import read_utf8
from assoclm.duplex.protocol import Dialogue, Event
from assoclm.io import PathLike

__all__ = ["load_chatterbot", "parse_chatterbot_yaml"]


class _Lines(list):
    """A YAML list that remembers the 1-based line on which each of its items starts."""

    rows: list[int]


class _ChatterbotLoader(yaml.SafeLoader):
    """PyYAML's ``SafeLoader`` (standard YAML types only, never arbitrary Python objects)
    with these changes:

    - No implicit typing: the class holds no implicit resolvers, so every plain scalar is
      a string (``yes``, ``42``, ``null``, ``2001-01-01`` stay text: an answer such as
      "Yes" or "1984" is what someone says, not a boolean or a number). A value with an
      explicit tag (``!!int 42``) still gets its type, and the structure checks of
      ``parse_chatterbot_yaml`` reject it.
    - Every list is a ``_Lines`` that records where each item starts
      (``node.start_mark.line + 1``).
    - An empty list item (a ``-`` with nothing after it) and a key that appears twice in a
      mapping are errors, where YAML would give an empty string or keep the last value.

    It is the pure-Python loader, not libyaml's ``CSafeLoader``, so the lines and the
    accepted syntax do not depend on how PyYAML was built.
    """

    yaml_implicit_resolvers: dict[str, Any] = {}

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source

    def construct_lines(self, node: SequenceNode) -> _Lines:
        for child in node.value:
            # A plain scalar is never empty in the text: an empty one is a missing value.
            if isinstance(child, ScalarNode) and child.value == "" and child.style is None:
                raise DataError(f"{self.source}:{child.start_mark.line + 1}: empty list item")
        lines = _Lines(self.construct_sequence(node, deep=True))
        lines.rows = [child.start_mark.line + 1 for child in node.value]
        return lines

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[str, int] = {}
        for key, _ in node.value:
            if isinstance(key, ScalarNode):
                line = key.start_mark.line + 1
                if key.value in first:
                    raise DataError(
                        f"{self.source}:{line}: duplicate key {key.value!r} "
                        f"(first on line {first[key.value]})"
                    )
                first[key.value] = line
        return super().construct_mapping(node, deep=deep)


_ChatterbotLoader.add_constructor("tag:yaml.org,2002:seq", _ChatterbotLoader.construct_lines)


def _load_yaml(text: str, source: str) -> tuple[Any, int]:
    """The single YAML document in ``text`` and the 1-based line on which it starts.

    Raises:
        DataError: no document, more than one, or text that is not YAML; the message names
            ``source`` and the line where PyYAML found the problem.
    """
    try:
        loader = _ChatterbotLoader(text, source)
    except yaml.reader.ReaderError as e:
        # The reader checks the whole text at once; for a str, position is an index into it.
        line = text.count("\n", 0, e.position) + 1
        raise DataError(
            f"{source}:{line}: not valid YAML: character U+{e.character:04X} is not allowed "
            "in a YAML file"
        ) from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise DataError(f"{source}:1: the file holds no YAML content")
        return loader.construct_document(node), node.start_mark.line + 1
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = source if mark is None else f"{source}:{mark.line + 1}"
        detail = e.problem or "malformed YAML"
        if e.context:
            started = "" if e.context_mark is None else f" on line {e.context_mark.line + 1}"
            detail += f" ({e.context}{started})"
        raise DataError(f"{where}: not valid YAML: {detail}") from None
    finally:
        loader.dispose()


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping (quote text that holds ': ')"
    return type(value).__name__


def parse_chatterbot_yaml(text: str, source: str = "<string>") -> list[tuple[int, list[str]]]:
    """The conversations of one chatterbot-corpus YAML file.

    The file is a mapping with a ``conversations`` key (other keys, e.g. ``categories``,
    are read and ignored) whose value is a list of lists of strings. A conversation that is
    a single string instead of a list is skipped: chatterbot-corpus 1.3.3 has one
    (``trivia.yml`` line 35, where a missing ``- `` makes YAML fold the question and its
    answer into one string). Plain scalars stay text (see ``_ChatterbotLoader``).

    Args:
        text: the file's text.
        source: the file name used in error messages.

    Returns:
        ``(line, utterances)`` per conversation, ``line`` 1-based where it starts.

    Raises:
        DataError: text that is not YAML, an empty list item, a duplicate key, or a
            structure other than the one above (an empty conversation, an utterance that
            is a list or a mapping); the message names ``source`` and the line.
    """
    doc, start = _load_yaml(text, source)
    if not isinstance(doc, dict):
        raise DataError(
            f"{source}:{start}: the top level must be a mapping with a 'conversations' key; "
            f"found {_kind(doc)}"
        )
    conversations = doc.get("conversations")
    if not isinstance(conversations, _Lines):
        found = "nothing" if conversations is None else type(conversations).__name__
        raise DataError(f"{source}: 'conversations' must be a list of lists; found {found}")
    result = []
    for line, conversation in zip(conversations.rows, conversations):
        if isinstance(conversation, str):
            continue
        if not isinstance(conversation, _Lines):
            raise DataError(
                f"{source}:{line}: a conversation must be a list of lines of text, "
                f"got {_kind(conversation)}"
            )
        if not conversation:
            raise DataError(f"{source}:{line}: empty conversation")
        for item_line, item in zip(conversation.rows, conversation):
            if not isinstance(item, str):
                raise DataError(f"{source}:{item_line}: expected a line of text, got {_kind(item)}")
        result.append((line, list(conversation)))
    return result


def load_chatterbot(cache_dir: PathLike | None = None, progress: bool = True) -> list[Dialogue]:
    """The English conversations of chatterbot-corpus 1.3.3 (BSD-3-Clause), one dialogue each.

    The pinned sdist is fetched once with ``fetch_corpus("chatterbot-corpus")``. Utterances
    alternate user, model, user, ..., the first being the user's; their text is stripped.

    Returns:
        Dialogues named ``"chatterbot/<file>.yml:<line>"``, by file then line.

    Raises:
        DataError: the corpus cannot be fetched or a file cannot be read (see
            ``parse_chatterbot_yaml``).
    """
    files = fetch_corpus("chatterbot-corpus", cache_dir=cache_dir, progress=progress)
    dialogues = []
    for path in files:
        for line, utterances in parse_chatterbot_yaml(read_utf8(path), str(path)):
            events = [
                Event("user" if k % 2 == 0 else "model", text.strip())
                for k, text in enumerate(utterances)
            ]
            dialogues.append(Dialogue(f"chatterbot/{path.name}:{line}", events))
    return dialogues
