"""`assoclm bench decode` on its --quick settings, its targets and its table."""

from __future__ import annotations

import json

import pytest

from assoclm.bench import decode


def _load(path):
    return json.loads(path.read_text())


def test_decode_quick_state_sizes(tmp_path):
    out = tmp_path / "decode.json"
    decode.main(["--quick", "--out", str(out)])
    result = _load(out)
    prop = [r for r in result["latency"] if r["model"] == "propagator"]
    trans = {r["context"]: r for r in result["latency"] if r["model"] == "transformer"}
    assert {r["context"] for r in prop} == {64, 256}
    assert len({r["state_bytes"] for r in prop}) == 1  # constant, whatever the context
    cfg = result["config"]["models"]["transformer"]["config"]
    # the measured cache holds the context and at most the few decoded tokens after it
    for L, r in trans.items():
        assert decode.kv_bytes(cfg, L) <= r["state_bytes"] <= decode.kv_bytes(cfg, L + 64)
    assert all(r["seconds_per_token"] > 0 for r in result["latency"])
    assert {(r["model"], r["prompt"]) for r in result["ttft"]} == {
        ("propagator", 64), ("transformer", 64)}
    assert result["targets"] == []
    table = decode.render(result)
    prop_ms = {r["context"]: f"{1e3 * r['seconds_per_token']:.2f}" for r in prop}
    assert f"| 64 | {prop_ms[64]} |" in table and f"| 256 | {prop_ms[256]} |" in table
    assert decode.stated_targets(result) == []


def test_decode_targets():
    lat = [{"model": "propagator", "context": 1024, "seconds_per_token": 1.0},
           {"model": "propagator", "context": 1_048_576, "seconds_per_token": 1.05},
           {"model": "propagator", "context": 32768, "seconds_per_token": 1.0},
           {"model": "transformer", "context": 32768, "seconds_per_token": 4.0}]
    flat, ratio = decode.targets(lat)
    assert flat["met"] and flat["measured"] == pytest.approx(1.05)
    assert not ratio["met"] and ratio["measured"] == pytest.approx(4.0)
