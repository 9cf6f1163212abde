"""`assoclm bench all`: the suites the registry marks for it, with the flags each takes."""

from __future__ import annotations

import sys
import types

import pytest

from assoclm.bench import registry, suite


def test_bench_all_runs_the_suites_marked_for_it_in_order():
    assert suite.all_suites() == ["ops", "recall", "lm", "train-speed", "decode",
                                  "positronic", "duplex"]


def test_bench_all_runs_the_chosen_suites_with_their_flags(monkeypatch, tmp_path, capsys):
    calls = []
    for s in registry.SUITES:
        monkeypatch.setitem(sys.modules, s.module, _fake_module(calls, s.name))
    assert suite.main(["--quick", "--suites", "lm,positronic,ops", "--out-dir", str(tmp_path),
                       "--data", "corpus.txt", "--device", "cuda:0"]) == 0
    out = str(tmp_path)
    assert calls == [
        ("lm", ["--out", f"{out}/lm-cuda.json", "--device", "cuda:0", "--quick",
                "--runs", "runs/bench-lm", "--data", "corpus.txt"]),
        ("positronic", ["--out", f"{out}/positronic-cuda.json", "--device", "cuda:0",
                        "--quick", "--data", "corpus.txt"]),
        ("ops", ["--out", f"{out}/ops-cuda.json", "--device", "cuda:0", "--quick"]),
    ]
    assert "== assoclm bench lm --out" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        suite.main(["--suites", "train"])  # not one that `bench all` runs
    assert "unknown suite(s) ['train']" in capsys.readouterr().err


def _fake_module(calls: list, name: str):
    return types.SimpleNamespace(main=lambda argv: calls.append((name, argv)))
