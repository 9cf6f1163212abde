"""`assoclm bench eam --quick` end to end: the JSON, its targets, the report table."""

from __future__ import annotations

import json

import pytest

from assoclm.bench import eam


def test_quick_run_writes_memory_sort_and_dial(tmp_path, capsys):
    out = tmp_path / "eam.json"
    assert eam.main(["--quick", "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["suite"] == "eam"
    mem = {(r["solver_steps"], r["grad_tail"]): r for r in result["memory"]}
    assert set(mem) == {(2, 1), (2, 2), (4, 1), (4, 4)}
    # JFB: flat in depth; full backprop: grows
    assert mem[4, 1]["peak_bytes"] == mem[2, 1]["peak_bytes"]
    assert mem[4, 4]["peak_bytes"] > mem[2, 2]["peak_bytes"] > mem[2, 1]["peak_bytes"]
    names = [t["name"] for t in result["targets"]]
    assert any("peak memory" in n for n in names) and any("sort" in n for n in names)
    memory_target = next(t for t in result["targets"] if "peak memory" in t["name"])
    assert memory_target["measured"] == 1.0 and memory_target["met"]
    assert [r["solver_steps"] for r in result["depth_dial"]] == [1, 4]
    assert len(result["sort"]["residuals"]) == 4
    assert (tmp_path / "eam.png").stat().st_size > 1000
    table = eam.render(result)
    assert "| 4 (trained) |" in table and "peak tensor memory" in table


@pytest.mark.parametrize("flags, message", [
    (["--depths", "8,x"], "--depths"),
    (["--time-budget", "0"], "--time-budget"),
    (["--dim", "0"], "--dim"),
    (["--dim", "30", "--heads", "4"], "multiple of num_heads"),
])
def test_bad_flags(flags, message, tmp_path, capsys):
    out = tmp_path / "x.json"
    with pytest.raises(SystemExit):
        eam.main([*flags, "--quick", "--out", str(out)])
    assert message in capsys.readouterr().err
    assert not out.exists()
