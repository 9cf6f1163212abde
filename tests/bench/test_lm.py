"""`assoclm bench lm` on its --quick settings."""

from __future__ import annotations

import json
import math

import pytest

from assoclm.bench import lm


def _load(path):
    return json.loads(path.read_text())


def test_lm_quick_trains_the_three_families_alike(tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                            for i in range(400)))
    out = tmp_path / "lm.json"
    lm.main(["--quick", "--data", str(data), "--out", str(out), "--runs",
             str(tmp_path / "runs"), "--no-progress", "--no-verbose"])
    result = _load(out)
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == set(lm.MODELS)
    assert len({r["tokens"] for r in rows.values()}) == 1  # equal training tokens
    params = [r["parameters"] for r in rows.values()]
    assert max(params) / min(params) < 1.1  # equal parameters (the preset's promise)
    for r in rows.values():
        assert math.isfinite(r["val_bpb"]) and r["val_bpb"] > 0
        assert r["curve"] and r["curve"][-1]["tokens"] == r["tokens"]
    assert result["targets"] == []  # not judged on quick settings
    (target,) = lm.targets(result["rows"])
    gap = rows["propagator"]["val_bpb"] / rows["transformer"]["val_bpb"] - 1
    assert target["measured"] == pytest.approx(gap)
    assert target["met"] == (gap <= lm.TARGET_GAP)
    table = lm.render(result)
    for r in rows.values():
        assert f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['tokens']:,} | " \
               f"{r['val_bpb']:.4f} |" in table
    assert "- propagator" not in table and lm.stated_targets(result) == []
    judged = lm.render({**result, "targets": [target]})
    assert "- propagator held-out bits/byte relative to the transformer: goal <= +3%" in judged
