"""The ops benchmark end to end on tiny shapes, its targets and its table."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from assoclm.bench import ops, report
from assoclm.bench.registry import stated_targets

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_writes_consistent_json_and_plot(tmp_path, capsys):
    out = tmp_path / "ops.json"
    ops.main(["--quick", "--out", str(out)])
    result = json.loads(out.read_text())
    assert (tmp_path / "ops.png").stat().st_size > 1000
    assert result["suite"] == "ops" and result["config"]["quick"] is True
    prov = result["provenance"]
    assert "assoclm.bench.ops" in prov["command"] and prov["git_commit"]
    assert prov["machine"]["device"] == "cpu"
    assert [r["T"] for r in result["rows"]] == [100, 256]
    for row in result["rows"]:
        med = row["median_s"]
        assert set(med) == {"chunked", "products_only", "recurrent", "fla_naive_chunk"}
        assert all(len(ts) == 2 and min(ts) > 0 for ts in row["times_s"].values())
        # Ratios are what the medians say, not typed in.
        assert row["speedup_vs_recurrent"] == pytest.approx(med["recurrent"] / med["chunked"])
        assert row["ceiling_vs_recurrent"] == pytest.approx(
            med["recurrent"] / med["products_only"])
        assert row["ratio_vs_fla_naive_chunk"] == pytest.approx(
            med["chunked"] / med["fla_naive_chunk"])
        assert row["rel_err_vs_recurrent"] < 1e-5
    # Targets are judged only on the configuration they are stated for.
    assert result["targets"] is None
    assert "T=100" in capsys.readouterr().out


def _chunked_fwd_bwd(T: int, chunk_size: int = 16, backward: bool = True):
    inputs = ops.make_inputs(2, T, 2, 8, 8, "cpu", torch.float32)
    if not backward:
        return lambda: ops.delta_rule_chunked(**inputs, chunk_size=chunk_size)
    return ops.build_cases(inputs, chunk_size, False, "cpu")["chunked"]


def test_the_recorder_sees_every_product_of_both_passes_chunk_by_chunk():
    one, four = (ops.record_products(_chunked_fwd_bwd(T)) for T in (16, 64))
    forward_only = ops.record_products(_chunked_fwd_bwd(64, backward=False))
    assert one and all(func.overloadpacket in ops.PRODUCT_OPS for func, _, _ in four)
    # The chunk loop runs its products once per chunk, and the backward pass adds its own.
    assert len(four) == 4 * len(one)
    assert 0 < len(forward_only) < len(four)
    assert any("solve_triangular" in str(func) for func, _, _ in one)


def test_the_replay_makes_exactly_the_recorded_calls():
    calls = ops.record_products(_chunked_fwd_bwd(48))
    replay = ops.replay_products(calls)
    assert ops.record_products(replay) == calls


def _args(**kw) -> Namespace:
    base = dict(batch=4, heads=4, key_dim=64, value_dim=64, device="cpu", dtype="float32")
    base.update(kw)
    return Namespace(**base)


def test_targets_are_judged_at_the_stated_configuration():
    rows = [{"T": 2048, "speedup_vs_recurrent": 25.0, "ratio_vs_fla_naive_chunk": 0.4}]
    t = ops.evaluate_targets(_args(), rows)
    assert t["speedup_vs_recurrent"]["met"] and t["ratio_vs_fla_naive_chunk"]["met"]
    rows = [{"T": 2048, "speedup_vs_recurrent": 12.0, "ratio_vs_fla_naive_chunk": 1.3}]
    t = ops.evaluate_targets(_args(), rows)
    assert not t["speedup_vs_recurrent"]["met"] and not t["ratio_vs_fla_naive_chunk"]["met"]
    assert ops.evaluate_targets(_args(heads=2), rows) is None
    assert ops.evaluate_targets(_args(), [{"T": 512, "ratio_vs_fla_naive_chunk": 1.0}]) is None


@pytest.mark.parametrize("argv, message", [
    (["--batch", "0"], "--batch must be >= 1"),
    (["--lengths", "0"], "--lengths must all be >= 1"),
    (["--dtype", "float64"], "invalid choice"),
    (["--replot", "/nonexistent/r.json"], "--replot /nonexistent/r.json: no such result file"),
])
def test_bad_flags_fail_fast(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        ops.main(argv + ["--out", str(tmp_path / "x.json")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_report_renders_the_numbers_of_the_file(tmp_path):
    result = json.loads((ROOT / "benchmarks/results/ops-cpu.json").read_text())
    result["rows"][0]["speedup_vs_recurrent"] = 123.4
    result["rows"][0]["ceiling_vs_recurrent"] = 234.5
    (tmp_path / "x.json").write_text(json.dumps(result))
    text = report.update("<!-- results:x -->\nold\n<!-- /results:x -->\n", tmp_path)
    assert "123.4×" in text and "234.5×" in text and "old" not in text
    assert "products_only (ceiling)" in text


def test_table_says_n_a_where_the_loop_was_not_run():
    result = json.loads((ROOT / "benchmarks/results/ops-cpu.json").read_text())
    del result["rows"][-1]["speedup_vs_recurrent"], result["rows"][-1]["ceiling_vs_recurrent"]
    last = ops.render(result).splitlines()[len(result["rows"]) + 1]
    assert last.startswith(f"| {result['rows'][-1]['T']} |") and "| n/a | n/a |" in last


def test_stated_targets_are_rows_of_the_dict_the_run_judged():
    result = json.loads((ROOT / "benchmarks/results/ops-cpu.json").read_text())
    rows = {t["name"]: t for t in ops.stated_targets(result)}
    where = "batch=4, heads=4, key_dim=64, value_dim=64, T=2048"
    speed = rows[f"delta-rule op speedup vs recurrent ({where})"]
    assert speed["goal"] == ">= 20.0" and speed["met"] is False
    assert speed["measured"] == result["targets"]["speedup_vs_recurrent"]["value"]
    assert rows[f"delta-rule op ratio vs fla naive chunk ({where})"]["met"] is True
    assert stated_targets(result) == list(rows.values())  # the registry asks the module
    assert ops.stated_targets({**result, "targets": None}) == []  # not the stated config
