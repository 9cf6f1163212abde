"""The recurrent-depth experiments end to end on --quick, their renderers, and the pieces the
tables rest on (valid horizon, re-grounding, the chaos floor)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from assoclm.bench import depth
from assoclm.bench.depth import dial, drift


def _run(tmp_path, kind: str, *flags: str) -> dict:
    out = tmp_path / f"{kind}.json"
    assert depth.main([kind, "--quick", "--out", str(out), "--no-verbose", *flags]) == 0
    assert (tmp_path / f"{kind}.png").stat().st_size > 1000
    return json.loads(out.read_text())


def test_dial_quick_writes_accuracy_per_depth_and_both_models(tmp_path):
    result = _run(tmp_path, "dial", "--test-depth", "1,3")
    assert result["suite"] == "depth-dial"
    assert result["provenance"]["command"].startswith("python -m assoclm.bench.depth dial")
    assert "targets" not in result  # no target is stated
    tied = [r for r in result["rows"] if r["model"] == "tied"]
    untied = [r for r in result["rows"] if r["model"] == "untied"]
    assert [r["depth"] for r in tied] == [1, 3]
    assert [r["depth"] for r in untied] == [result["config"]["untied_layers"]] == [4]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in result["rows"])
    models = {m["model"]: m for m in result["models"]}
    assert models["tied"]["blocks"] == 1 and models["untied"]["blocks"] == 4
    assert models["tied"]["block_parameters"] == models["untied"]["block_parameters"]
    extra = models["untied"]["parameters"] - models["tied"]["parameters"]
    # the untied stack has 3 more blocks; the tied model has the adapter (2D·D) instead
    width = result["config"]["width"]
    assert extra == 3 * models["untied"]["block_parameters"] - 2 * width * width
    table = depth.render(result)
    assert table.startswith("| model | parameters | depth 1 | depth 3 |")
    assert f"| tied (1 block) | {models['tied']['parameters']:,} |" in table


def test_ood_retrains_the_dial_models_and_tests_longer_inputs(tmp_path):
    dial_result = _run(tmp_path, "dial")
    result = _run(tmp_path, "ood", "--test-lengths", "2,5")
    assert result["suite"] == "depth-ood"
    assert sorted({r["length"] for r in result["rows"]}) == [2, 5]
    # the same seed and settings train exactly the models of the dial
    sums = {m["model"]: m["weights_sha256"] for m in result["models"]}
    assert sums == {m["model"]: m["weights_sha256"] for m in dial_result["models"]}
    table = depth.render(result)
    assert "| 2 (trained) |" in table and "| 5 |" in table
    assert table.count("\n|") == 3  # header rule and two lengths


def test_drift_quick_reports_curves_horizons_and_the_float32_floor(tmp_path):
    result = _run(tmp_path, "drift", "--reground-every", "2,3")
    assert result["suite"] == "depth-drift"
    steps = result["rollout_steps"]
    assert steps == result["config"]["extrapolate"] * result["train_horizon"] == 32
    modes = [r["mode"] for r in result["rows"]]
    assert modes == ["free-running", "re-grounded every 2", "re-grounded every 3"]
    for r in result["rows"]:
        for key in ("error", "latent_rms", "manifold_drift"):
            assert len(r[key]) == steps + 1 and all(np.isfinite(r[key]))
        assert 0 <= r["valid_horizon_median"] <= steps + 1
    assert len(result["float32_true_map"]["error"]) == steps + 1
    table = depth.render(result)
    assert table.splitlines()[0].startswith("| rollout | valid horizon")
    assert "| true map in float32 |" in table and "| re-grounded every 3 |" in table
    # a rollout that never leaves the tolerance is shown as beyond the rollout
    result["rows"][1].update(valid_horizon_median=33.0, valid_horizon_never_exceeded=1.0)
    result["rows"][2].update(valid_horizon_median=7.0, valid_horizon_never_exceeded=0.25)
    table = depth.render(result)
    assert "| re-grounded every 2 | > 32 (100% never exceed) |" in table
    assert "| re-grounded every 3 | 7 (25% never exceed) |" in table


def test_unknown_experiment_and_bad_flags_fail_clearly(tmp_path, capsys):
    assert depth.main(["depths"]) == 2
    assert "got 'depths'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        depth.main(["dial", "--quick", "--kv-heads", "3", "--out", str(tmp_path / "x.json")])
    assert "num_kv_heads=3 must divide num_heads=2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        depth.main(["drift", "--train-length", "3"])
    assert "--train-length must be >= --horizon + 2 = 10; got 3" in capsys.readouterr().err


def test_valid_horizon_is_the_first_step_over_the_tolerance():
    errors = torch.tensor([[0.0, 0.1, 0.5, 0.1], [0.0, 0.0, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0]])
    assert drift.valid_horizon(errors, 0.4).tolist() == [2, 4, 0]


def test_regrounding_replaces_the_latent_with_the_encoded_observation():
    torch.manual_seed(0)
    model = drift.LatentDynamics(1, 8, 2.0)
    x = torch.randn(3, 7, 1)
    with torch.no_grad():
        _, free = model.rollout(x, 6)
        _, grounded = model.rollout(x, 6, reground_every=3)
        encoded = model.encoder(x)
    torch.testing.assert_close(grounded[:, 3], encoded[:, 3])
    torch.testing.assert_close(grounded[:, 6], encoded[:, 6])
    torch.testing.assert_close(grounded[:, :3], free[:, :3])
    torch.testing.assert_close(grounded[:, 4], model.advance(encoded[:, 3]).detach())
    assert (grounded[:, 4] - free[:, 4]).abs().max() > 1e-4


def test_float32_floor_of_the_logistic_map_grows_at_the_lyapunov_rate():
    x = drift.trajectories("logistic", 256, 61, seed=3)
    floor = drift.float32_chaos_floor("logistic", x, 60, x.std(axis=(0, 1)), 0.4)
    err = np.array(floor["error"])
    # float32 rounding (~1e-8) grows by e^0.49 per step: tens of steps of valid prediction
    assert err[0] < 1e-6 and err[60] > 0.5
    assert 20 < floor["valid_horizon_median"] < 45


def test_dial_depth_accuracy_uses_the_requested_depth():
    args = dial.build_parser("dial").parse_args(["--width", "16", "--heads", "2",
                                                  "--kv-heads", "1", "--train-depth", "2"])
    configs = dial.model_configs(args, 11)
    torch.manual_seed(0)
    model = dial.RecurrentDepthLM(configs["tied"].replace(init_std=0.3))
    task = dial.make_task(3, 40, seed=0)
    accs = {d: dial.depth_accuracy(model, task, d, 16, "cpu") for d in (2, 5)}
    with torch.no_grad():
        preds = model(task.inputs, depth=5)[0].argmax(-1)
    assert accs[5] == dial.accuracy(preds, task)
    assert configs["untied"].tied is False and configs["untied"].train_depth == 16
