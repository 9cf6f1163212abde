"""`assoclm bench report`: the pages match the result files, every file renders, and the
sections drawn from several files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assoclm.bench import registry, report

ROOT = Path(__file__).resolve().parents[2]
RESULTS = sorted((ROOT / report.RESULTS_DIR).glob("*.json"))


@pytest.mark.parametrize("page", report.PAGES)
def test_readme_results_match_the_result_files(page):
    readme = (ROOT / page).read_text()
    assert "<!-- results:" in readme
    assert report.update(readme, ROOT / report.RESULTS_DIR) == readme, (
        "README.md's results sections differ from benchmarks/results/*.json; "
        "run python -m assoclm.bench.report"
    )


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_every_result_file_renders_and_states_its_targets_as_rows(path):
    text = report.render(path.stem, path.parent)
    assert text.endswith("\n") and "|" in text
    for target in registry.stated_targets(json.loads(path.read_text())):
        assert set(target) == {"name", "goal", "measured", "met"}, (path.name, target)
        assert isinstance(target["met"], bool)


def test_targets_section_lists_every_files_targets(tmp_path):
    rec = {"suite": "lm", "targets": [{"name": "t", "goal": ">= 0.99", "measured": 0.9876,
                                       "met": False}]}
    (tmp_path / "r.json").write_text(json.dumps(rec))
    (tmp_path / "s.json").write_text(json.dumps({"suite": "train-speed"}))  # states none
    page = report.update("<!-- results:targets -->\n<!-- /results:targets -->\n", tmp_path)
    assert "| [`r.json`](../benchmarks/results/r.json) | t | >= 0.99 | 0.988 | **no** |" in page
    assert "s.json" not in page


def test_targets_section_shows_percent_goals_as_signed_percentages(tmp_path):
    rec = {"suite": "lm", "targets": [{"name": "gap", "goal": "<= +3%", "measured": -0.0521,
                                       "met": True}]}
    (tmp_path / "lm.json").write_text(json.dumps(rec))
    assert "| gap | <= +3% | -5.2% | yes |" in report.render("targets", tmp_path)


def test_update_rewrites_only_the_marked_sections(tmp_path):
    src = json.loads((ROOT / "benchmarks/results/lm-cpu.json").read_text())
    (tmp_path / "x.json").write_text(json.dumps(src))
    page = "intro\n<!-- results:x -->\nstale\n<!-- /results:x -->\noutro\n"
    new = report.update(page, tmp_path)
    assert new.startswith("intro\n<!-- results:x -->\n| model |")
    assert new.endswith("<!-- /results:x -->\noutro\n") and "stale" not in new
    assert new == report.update(new, tmp_path)


def test_a_missing_or_unknown_result_file_is_named(tmp_path):
    with pytest.raises(SystemExit, match="nope.json does not exist"):
        report.render("nope", tmp_path)
    (tmp_path / "odd.json").write_text(json.dumps({"suite": "mystery"}))
    with pytest.raises(SystemExit, match="unknown suite 'mystery'"):
        report.render("odd", tmp_path)


def test_main_writes_stale_pages_and_check_reports_them(tmp_path, monkeypatch, capsys):
    results = tmp_path / report.RESULTS_DIR
    results.mkdir(parents=True)
    (results / "lm-cpu.json").write_text((ROOT / "benchmarks/results/lm-cpu.json").read_text())
    page = tmp_path / "PAGE.md"
    page.write_text("<!-- results:lm-cpu -->\nold\n<!-- /results:lm-cpu -->\n")
    monkeypatch.chdir(tmp_path)
    assert report.main(["--check", "PAGE.md"]) == 1
    assert "PAGE.md is stale" in capsys.readouterr().err
    assert report.main(["PAGE.md"]) == 0
    assert "updated PAGE.md" in capsys.readouterr().out
    assert "old" not in page.read_text() and report.main(["--check", "PAGE.md"]) == 0


def test_report_names_a_missing_readme(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "NOPE.md")])
    assert "no such file" in capsys.readouterr().err
