"""Duplex-UltraChat-style dialogues from a local JSONL file: one row per line, one
dialogue per row, the conversation given as time slices of user and model speech.

The file is read from disk only; nothing here talks to a model or data-set hub
(docs/ARCHITECTURE.md, "Data policy").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from assoclm.data.corpora import DataError
from assoclm.data.text import jsonl_field_values, read_utf8
from assoclm.duplex.protocol import Dialogue, Event
from assoclm.io import PathLike

__all__ = ["load_ultrachat_jsonl"]

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
    text = read_utf8(path)
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
