"""The README's headline table: every number from its result file, every link live."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from assoclm.bench import headline, report

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / report.RESULTS_DIR


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_headline_renders_one_row_per_headline_from_the_committed_files():
    text = report.render("headline", RESULTS)
    lines = text.splitlines()
    assert lines[0] == "| result | measured | result file | details |"
    assert len(lines) == 2 + len(headline.HEADLINES) <= 14
    demo = json.loads((RESULTS / "demo-duplex-cpu.json").read_text())["metrics"]
    assert f"{100 * demo['protocol']['decision_accuracy']['value']:.1f}%" in lines[2]
    lm = {r["model"]: r["val_bpb"] for r in json.loads((RESULTS / "lm-cpu.json").read_text())[
        "rows"]}
    assert f"{lm['propagator']:.4f} vs {lm['transformer']:.4f}" in text
    assert "| 11.2× at T = 2,048 (ceiling 31.5×) |" in text
    assert "state 128 KiB vs the Transformer's 7,424.0 MiB KV cache (computed)" in text


@pytest.mark.parametrize("h", headline.HEADLINES, ids=[h.label for h in headline.HEADLINES])
def test_each_row_links_its_file_and_an_existing_section(h):
    assert (RESULTS / h.file).is_file()
    page, _, anchor = h.doc.partition("#")
    headings = (ROOT / (page or "README.md")).read_text().splitlines()
    anchors = {github_anchor(line.lstrip("#")) for line in headings if line.startswith("#")}
    assert anchor in anchors, f"{h.doc}: no such heading in {page or 'README.md'}"


def test_every_number_comes_from_the_file(tmp_path):
    for path in RESULTS.glob("*.json"):
        shutil.copy(path, tmp_path)
    lm = json.loads((tmp_path / "lm-cpu.json").read_text())
    next(r for r in lm["rows"] if r["model"] == "propagator")["val_bpb"] = 1.2345678
    (tmp_path / "lm-cpu.json").write_text(json.dumps(lm))
    eam = json.loads((tmp_path / "eam-cpu.json").read_text())
    eam["sort"]["sequence_accuracy"] = 0.5
    (tmp_path / "eam-cpu.json").write_text(json.dumps(eam))
    text = report.render("headline", tmp_path)
    assert "1.2346 vs" in text and "50.0% sequence accuracy" in text
    (tmp_path / "ops-cpu.json").unlink()
    with pytest.raises(SystemExit, match="ops-cpu.json does not exist"):
        report.render("headline", tmp_path)


def test_a_row_is_a_label_a_measurement_and_two_links(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"val_bpb": 2.5, "parameters": 1_000_000,
                                                 "model": "m", "tokens": 10, "elapsed_s": 3}))
    row = headline.Headline("Text", "t.json", headline.train_run_bpb, "docs/X.md#y", "x")
    text = headline.render_headline(tmp_path, (row,))
    assert text.splitlines()[2] == ("| Text | 2.500 (1.00M-parameter m, 10 tokens in 3 s) | "
                                    "[`t.json`](benchmarks/results/t.json) | [x](docs/X.md#y) |")
