"""assoclm bench positronic: the ablation table, gates, parameter counts, speculative decoding
and the comparison with the transformer, end to end on tiny data."""

from __future__ import annotations

import json
import math

import pytest
import torch

from assoclm.bench import positronic as bench
from assoclm.models.positronic import PositronicConfig, PositronicLM

TINY = dict(vocab_size=40, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
            attn_rank=16, ring_sizes=(4, 8), mtp_heads=2)


def test_ablation_measures_each_gate():
    torch.manual_seed(0)
    model = PositronicLM(PositronicConfig(**TINY, traits=("hrm", "moe", "jepa")))
    batch = torch.randint(0, 40, (2, 12))
    rows = {r["component"]: r for r in bench.ablation(model, batch)}
    assert set(rows) == {"oscillators.0", "oscillators.1", "hrm", "moe", "jepa"}
    # oscillator blocks start at tanh(g) = 0.9: zeroing one moves the logits
    for i in range(2):
        assert rows[f"oscillators.{i}"]["max_abs_dlogit"] > 1e-4
        assert rows[f"oscillators.{i}"]["gate"] == pytest.approx(0.9)
    # the traits are no-ops at initialisation and JEPA never touches the logits: exactly 0
    for trait in ("hrm", "moe", "jepa"):
        assert rows[trait]["max_abs_dlogit"] == 0.0
    # once the HRM output is non-zero its ablation is measured, and the model is untouched
    with torch.no_grad():
        model.post.hrm.out.weight.normal_(std=0.5)
    before = model(batch)[0]
    rows = {r["component"]: r for r in bench.ablation(model, batch)}
    assert rows["hrm"]["max_abs_dlogit"] > 1e-3
    assert torch.equal(model(batch)[0], before)
    counts = bench.parameter_breakdown(model)
    assert sum(v for k, v in counts.items() if k != "total") == counts["total"]
    assert counts["total"] == model.num_parameters()


def test_quick_run_end_to_end(tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text("".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                            for i in range(400)))
    out = tmp_path / "positronic.json"
    bench.main(["--quick", "--data", str(data), "--out", str(out), "--runs",
                str(tmp_path / "runs"), "--no-progress", "--no-verbose"])
    result = json.loads(out.read_text())
    assert out.with_suffix(".png").is_file()
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == {"transformer", "positronic", "positronic+traits"}
    assert len({r["tokens"] for r in rows.values()}) == 1             # equal training tokens
    assert abs(rows["positronic"]["parameters"] / rows["transformer"]["parameters"] - 1) < 0.05
    assert result["bpb_relative_to_transformer"] == pytest.approx(
        rows["positronic"]["val_bpb"] / rows["transformer"]["val_bpb"] - 1)
    traits = result["positronic"]["positronic+traits"]
    components = {r["component"] for r in traits["ablation"]}
    assert {"oscillators.0", "oscillators.1", "hrm", "moe", "jepa"} <= components
    assert len(traits["gates"]) == 2 and all(math.isfinite(g) for g in traits["gates"])
    jepa = next(r for r in traits["ablation"] if r["component"] == "jepa")
    assert jepa["max_abs_dlogit"] == 0.0
    spec = result["speculative"]
    assert spec["identical"] and all(p["identical"] for p in spec["prompts"])
    assert 0 <= spec["acceptance"] <= 1 and spec["tokens_per_forward"] >= 1
    assert result["targets"] == []                       # quick settings are not judged
    text = bench.render(result)
    assert "| oscillators.0 |" in text and "speed-up" in text


@pytest.mark.parametrize("argv, message", [
    (["--traits", "wings"], "wings"),
    (["--quick", "--prompt-len", "99"], "--prompt-len"),
    (["--quick", "--tokens", "0"], "--tokens"),
])
def test_bad_flags_fail_fast(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        bench.main([*argv, "--out", str(tmp_path / "x.json")])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
