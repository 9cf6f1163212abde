"""Helpers shared by the dialogue-source tests: event tuples, JSONL rows and a fake corpus."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from assoclm.duplex.protocol import Dialogue


def pairs(dialogue: Dialogue) -> list[tuple[str, str, bool]]:
    """``(role, text, interrupted)`` per event of ``dialogue``."""
    return [(e.role, e.text, e.interrupted) for e in dialogue.events]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    """Write one row per line (a str as it is, anything else as JSON); return ``path``."""
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def turn(role: str, content: object) -> dict[str, object]:
    """One Duplex-UltraChat time slice."""
    return {"role": role, "content": content}


def fake_corpus(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, module: ModuleType, files: dict[str, str]
) -> None:
    """Write ``files`` under ``tmp_path`` and make ``module.fetch_corpus`` return them."""
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    monkeypatch.setattr(module, "fetch_corpus", lambda name, cache_dir=None, progress=True: paths)
