"""Render benchmark result files into the pages, so that no number there is typed by hand.

    assoclm bench report            # rewrite the marked sections of README.md and docs/*.md
    assoclm bench report --check    # exit 1 if one of them is stale

A section sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->`, where NAME is
either a result file in benchmarks/results/ without `.json` (rendered by the module that
the registry, ``assoclm.bench.registry``, names for its kind), or one of the sections drawn
from several files:

- `targets`: every target stated by any result file, with the measured number;
- `headline`: one table of the headline results, each linked to its file and its section.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from assoclm.bench import registry
from assoclm.bench.headline import render_headline
from assoclm.bench.render import shown
from assoclm.io import write_text_atomic

RESULTS_DIR = Path("benchmarks/results")
PAGES = ("README.md", "docs/RESULTS.md", "docs/EAM.md", "docs/POSITRONIC.md")
SECTION = re.compile(
    r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
    re.DOTALL,
)


def render_targets(results_dir: Path = RESULTS_DIR) -> str:
    """Every target any result file states, with its measured number and whether it is met
    (for docs/RESULTS.md: links are relative to docs/)."""
    lines = ["| result file | target | goal | measured | met |", "|---|---|---|---|---|"]
    for path in sorted(results_dir.glob("*.json")):
        for t in registry.stated_targets(json.loads(path.read_text())):
            lines.append(f"| [`{path.name}`](../benchmarks/results/{path.name}) | {t['name']} | "
                         f"{t['goal']} | {shown(t)} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


# sections drawn from several result files: name -> renderer of the results folder
CROSS_SECTIONS = {"targets": render_targets, "headline": render_headline}


def render(name: str, results_dir: Path = RESULTS_DIR) -> str:
    """The Markdown of section ``name``: a cross-file section, or result file ``name``.json.

    Raises:
        SystemExit: the file does not exist, or no renderer is registered for its kind.
    """
    if name in CROSS_SECTIONS:
        return CROSS_SECTIONS[name](results_dir)
    path = results_dir / f"{name}.json"
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"results section {name!r}: {path} does not exist") from None
    kind = result.get("suite")
    if kind not in registry.RENDERERS:
        raise SystemExit(f"{path}: unknown suite {kind!r}; known: {sorted(registry.RENDERERS)}")
    return registry.render(result)


def update(text: str, results_dir: Path = RESULTS_DIR) -> str:
    """``text`` with every marked section re-rendered from ``results_dir``."""
    return SECTION.sub(lambda m: m.group(1) + render(m.group("name"), results_dir) + m.group(4),
                       text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assoclm.bench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", default=list(PAGES),
                   help=f"markdown files to update (default: {' '.join(PAGES)})")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = p.parse_args(argv)
    stale = 0
    for name in args.files:
        page = Path(name)
        if not page.is_file():
            p.error(f"{page}: no such file (run from the repository root)")
        old = page.read_text()
        new = update(old)
        if args.check:
            if new != old:
                print(f"{page} is stale: run assoclm bench report", file=sys.stderr)
                stale = 1
            continue
        if new != old:
            write_text_atomic(page, new)
            print(f"updated {page}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
