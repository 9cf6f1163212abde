"""The rendering helpers every result section shares."""

from __future__ import annotations

from assoclm.bench import render

PROV = {"command": "python -m assoclm.cli bench lm", "git_commit": "0123456789abcdef0123",
        "machine": {"device": "cpu", "cpu": "test cpu", "torch_threads": 1, "torch": "2.5"}}


def test_machine_line_names_device_threads_commit_and_command():
    assert render.machine_line(PROV) == (
        "cpu (test cpu, 1 thread), torch 2.5, commit `0123456789ab`. "
        "Command: `python -m assoclm.cli bench lm`")
    gpu = {**PROV, "machine": {**PROV["machine"], "device": "cuda", "gpu": "H100",
                               "torch_threads": 4}}
    assert render.machine_line(gpu).startswith("cuda (H100), torch 2.5")
    two = {**PROV, "machine": {**PROV["machine"], "torch_threads": 2}}
    assert "(test cpu, 2 threads)" in render.machine_line(two)


def test_commit_says_when_the_tree_was_dirty():
    assert render.commit(PROV) == "`0123456789ab`"
    dirty = render.commit({**PROV, "git_commit": "0123456789abcdef-dirty"})
    assert dirty == "`0123456789ab` (with uncommitted changes)"


def test_percentages_and_measured_values():
    assert render.pct(0.98765) == "98.8%" and render.pct(None) == "n/a"
    assert render.shown({"goal": "<= +3%", "measured": -0.0521}) == "-5.2%"
    assert render.shown({"goal": ">= 0.99", "measured": 0.9876}) == "0.988"
    assert render.shown({"goal": "identical", "measured": "identical"}) == "identical"


def test_target_lines_say_met_or_not():
    targets = [{"name": "a", "goal": ">= 0.99", "measured": 0.995, "met": True},
               {"name": "b", "goal": ">= 0.99", "measured": "not run", "met": False}]
    assert render.targets_lines(targets) == [
        "- a: goal >= 0.99, measured **0.995**: met.",
        "- b: goal >= 0.99, measured **not run**: **not met**."]
    assert render.with_targets(["x"], targets) == "x\n\n" + "\n".join(
        render.targets_lines(targets)) + "\n"
    assert render.with_targets(["x", "y"], []) == "x\ny\n"


def test_decision_rule_line_states_the_rule_from_the_margin():
    assert "by more than 3.00 nats" in render.decision_rule_line(2.995732273553991)
    assert render.decision_rule_line(None).startswith("Scored with the earlier rule")
