"""Weighted mixtures of dialogue sources, from a spec such as
``"chatterbot:1,shakespeare:1,memory:2,rows.jsonl:1"``.

``load_dialogues`` parses the spec, loads each source it names (``chatterbot``,
``shakespeare``, ``memory`` or a Duplex-UltraChat-style JSONL file) and mixes them with
``mix_dialogues``: a seeded sample by share of dialogues with unique names, so a split by
name agrees across machines.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from assoclm.data.corpora import DataError
from assoclm.duplex.protocol import Dialogue
from assoclm.duplex.sources.chatterbot import load_chatterbot
from assoclm.duplex.sources.memory import memory_dialogues
from assoclm.duplex.sources.shakespeare import load_shakespeare_dialogues
from assoclm.duplex.sources.ultrachat import load_ultrachat_jsonl
from assoclm.io import PathLike

__all__ = [
    "DEFAULT_DUPLEX_MIX",
    "DIALOGUE_SOURCES",
    "load_dialogues",
    "mix_dialogues",
    "mix_sources",
]

#: Built-in dialogue sources a mix spec may name; anything else must be a JSONL file.
DIALOGUE_SOURCES = ("chatterbot", "memory", "shakespeare")

#: Shares of dialogues (not tokens) in the default duplex training mix.
DEFAULT_DUPLEX_MIX = "chatterbot:2,shakespeare:1,memory:3"


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
