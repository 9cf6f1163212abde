"""Weighted mixes of dialogue sources: shares, stratified repeats, unique names, seeding,
mix specs and their errors, and the default mix over the real corpora (slow-marked)."""

from __future__ import annotations

from collections import Counter

import pytest

from assoclm.data.corpora import DataError
from assoclm.duplex.protocol import Dialogue, Event
from assoclm.duplex.sources import (
    DEFAULT_DUPLEX_MIX,
    load_dialogues,
    memory_dialogues,
    mix_dialogues,
    mix_sources,
)
from tests.duplex.sources.helpers import turn, write_jsonl


def _source(name: str, n: int) -> list[Dialogue]:
    return [Dialogue(f"{name}/{i}", [Event("user", f"{name} {i}")]) for i in range(n)]


def test_mix_shares_follow_weights_and_repeat_only_small_sources():
    sources = {"a": _source("a", 100), "b": _source("b", 10), "c": _source("c", 50)}
    got = mix_dialogues(sources, {"a": 1, "b": 2, "c": 1}, total=400, seed=0)
    shares = Counter(d.name.split("/")[0] for d in got)
    assert shares == {"a": 100, "b": 200, "c": 100}, shares
    assert len({d.name for d in got}) == 400, "names must stay unique"
    copies = Counter(d.name.split("#")[0] for d in got if d.name.startswith("b/"))
    assert set(copies.values()) == {20}, f"stratified: every b dialogue 20 times, got {copies}"
    a_names = [d.name for d in got if d.name.startswith("a/")]
    assert not any("#" in n for n in a_names) and len(set(a_names)) == 100


@pytest.mark.parametrize("total", [1, 7, 100, 333], ids=lambda t: f"total{t}")
def test_mix_shares_are_within_one_of_exact(total):
    sources = {"a": _source("a", 500), "b": _source("b", 500), "c": _source("c", 500)}
    weights = {"a": 1.0, "b": 2.5, "c": 0.5}
    got = mix_dialogues(sources, weights, total=total, seed=3)
    assert len(got) == total
    shares = Counter(d.name.split("/")[0] for d in got)
    for name, w in weights.items():
        exact = total * w / 4.0
        assert abs(shares[name] - exact) < 1, f"{name}: {shares[name]} vs exact {exact:.2f}"


def test_mix_is_seeded():
    sources = {"a": _source("a", 30), "b": _source("b", 30)}
    weights = {"a": 1, "b": 1}
    one = mix_dialogues(sources, weights, total=20, seed=0)
    assert one == mix_dialogues(sources, weights, total=20, seed=0)
    assert [d.name for d in one] != [d.name for d in mix_dialogues(sources, weights, 20, seed=1)]


def test_mix_rejects_bad_arguments():
    sources = {"a": _source("a", 3)}
    with pytest.raises(ValueError, match="weights must name exactly the sources"):
        mix_dialogues(sources, {"b": 1}, total=2, seed=0)
    with pytest.raises(ValueError, match="at least one weight must be positive"):
        mix_dialogues(sources, {"a": 0}, total=2, seed=0)
    with pytest.raises(ValueError, match="finite number >= 0"):
        mix_dialogues(sources, {"a": float("nan")}, total=2, seed=0)
    with pytest.raises(DataError, match="'e' has no dialogues"):
        mix_dialogues({"a": _source("a", 3), "e": []}, {"a": 1, "e": 1}, total=2, seed=0)


def test_load_dialogues_mixes_a_jsonl_file_with_memory(tmp_path):
    rows = [{"output": [turn("user", f"hi {i}"), turn("gpt", "hello.")]} for i in range(12)]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    got = load_dialogues(f"memory:2,{path}:1", seed=5)
    shares = Counter("memory" if d.name.startswith("memory/") else "jsonl" for d in got)
    # total=None: the largest mix that repeats no file row; memory fills its share.
    assert shares == {"jsonl": 12, "memory": 24}, shares
    assert got == load_dialogues(f"memory:2,{path}:1", seed=5)
    fixed = load_dialogues(f"{path}:1,memory", total=40, n_memory=5, seed=5)
    names = Counter(d.name.split("#")[0] for d in fixed if d.name.startswith("memory/"))
    assert len(names) == 5 and sum(names.values()) == 20, names


@pytest.mark.parametrize(
    "spec, message",
    [
        ("wikipedia:1", "unknown dialogue source 'wikipedia'"),
        ("chatterbot:1,,memory:1", "empty entry"),
        ("memory:lots", "weight 'lots' of 'memory'"),
        ("memory:0", "must be > 0"),
        ("memory:1,memory:2", "appears twice"),
        ("memory:1", "only synthetic memory dialogues"),
    ],
    ids=["unknown", "empty", "weight-word", "weight-zero", "twice", "memory-only"],
)
def test_load_dialogues_spec_errors(spec, message):
    with pytest.raises(DataError) as info:
        load_dialogues(spec)
    assert message in str(info.value), str(info.value)
    if "unknown" in message:
        assert "chatterbot, memory, shakespeare" in str(info.value)


def test_load_dialogues_memory_only_with_total():
    got = load_dialogues("memory", total=9, seed=2)
    assert got == mix_dialogues({"memory": memory_dialogues(9, seed=2)}, {"memory": 1}, 9, 2)


@pytest.mark.slow
def test_real_default_mix():
    got = load_dialogues(DEFAULT_DUPLEX_MIX, progress=False)
    shares = Counter(d.name.split("/")[0] for d in got)
    assert shares == {"chatterbot": 2025, "shakespeare": 1012, "memory": 3038}, shares


def test_mix_sources(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("")
    assert mix_sources(f"chatterbot:2,memory:3,{rows}") == ["chatterbot", "memory", str(rows)]
    assert mix_sources("memory:1") == ["memory"]
    with pytest.raises(DataError, match="appears twice"):
        mix_sources("memory:1,memory:2")
