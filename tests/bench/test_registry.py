"""The one registry of suites: complete, and what `assoclm bench` and `bench all` run."""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import pytest

import assoclm.bench as bench
from assoclm.bench import registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("s", registry.SUITES, ids=[s.name for s in registry.SUITES])
def test_every_suite_module_runs_and_renders(s):
    module = importlib.import_module(s.module)
    assert isinstance(module, registry.SuiteModule), f"{s.module} lacks main/render/targets"
    assert s.description and s.results


@pytest.mark.parametrize("kind", sorted(registry.COMMAND_RESULTS))
def test_every_command_result_has_a_renderer(kind):
    assert isinstance(registry.renderer(kind), registry.ResultRenderer)


def test_every_result_file_has_a_registered_renderer():
    kinds = {json.loads(p.read_text())["suite"]
             for p in (ROOT / "benchmarks/results").glob("*.json")}
    assert kinds <= set(registry.RENDERERS), kinds - set(registry.RENDERERS)


def test_each_result_kind_has_one_owner():
    kinds = [k for s in registry.SUITES for k in s.results] + list(registry.COMMAND_RESULTS)
    assert len(kinds) == len(set(kinds))
    assert registry.RENDERERS["depth-drift"] == "assoclm.bench.depth"
    with pytest.raises(ValueError, match="unknown result kind 'nope'"):
        registry.renderer("nope")


def test_suites_in_the_order_they_are_listed():
    assert registry.suite_names() == ["ops", "recall", "lm", "train-speed", "decode", "train",
                                      "eam", "depth", "positronic", "duplex"]
    assert registry.get_suite("train-speed").module == "assoclm.bench.speed"
    with pytest.raises(KeyError, match="unknown suite 'nope'"):
        registry.get_suite("nope")


def _fake_module(calls: list, name: str, result):
    def main(argv):
        calls.append((name, argv))
        return result
    return types.SimpleNamespace(main=main)


def test_dispatch_runs_the_registered_module(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "assoclm.bench.speed",
                        _fake_module(calls, "train-speed", {"suite": "x"}))
    monkeypatch.setitem(sys.modules, "assoclm.bench.depth", _fake_module(calls, "depth", 2))
    assert bench.run("train-speed", ["--quick"]) == 0  # a suite's result dict: success
    assert bench.run("depth", ["dial"]) == 2  # an int is the exit status
    assert calls == [("train-speed", ["--quick"]), ("depth", ["dial"])]


def test_bench_lists_commands_and_rejects_unknown(capsys):
    listed = bench.usage()
    for name in ("recall", "lm", "train-speed", "decode", "ops", "depth", "all", "report"):
        assert f"\n  {name} " in listed
    assert registry.get_suite("eam").description in listed
    assert bench.run("nope", []) == 2
    assert "unknown suite" in capsys.readouterr().err
