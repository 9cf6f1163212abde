"""Render benchmark result files into the README, so that no number there is typed by hand.

    python -m assoclm.bench.report            # rewrite the marked sections of README.md
    python -m assoclm.bench.report --check    # exit 1 if README.md is stale

A section sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->`, where NAME is a
result file in benchmarks/results/ without `.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

RESULTS_DIR = Path("benchmarks/results")
SECTION = re.compile(
    r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
    re.DOTALL,
)


def render_ops(result: dict) -> str:
    cfg, prov = result["config"], result["provenance"]
    names = list(result["rows"][0]["median_s"])
    head = ["T"] + [f"{n} (ms)" for n in names] + ["recurrent / chunked", "chunked / fla naive"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        cells = [str(row["T"])] + [f"{1e3 * row['median_s'][n]:.1f}" for n in names]
        speed = row.get("speedup_vs_recurrent")
        cells.append(f"{speed:.1f}×" if speed is not None else "n/a")
        cells.append(f"{row['ratio_vs_fla_naive_chunk']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    machine = prov["machine"]
    lines.append("")
    lines.append(
        f"Forward + backward, median of {cfg['repeats']} interleaved runs; B={cfg['batch']}, "
        f"H={cfg['heads']}, K={cfg['key_dim']}, V={cfg['value_dim']}, C={cfg['chunk_size']}, "
        f"{cfg['dtype']} on {machine['device']} ({machine['cpu']}, {machine['torch_threads']} "
        f"threads), torch {machine['torch']}, commit `{prov['git_commit'][:12]}`. "
        f"Command: `{prov['command']}`. Absolute times from this shared machine are "
        "indicative only; the ratios are the result."
    )
    return "\n".join(lines) + "\n"


RENDERERS = {"ops": render_ops}


def render(name: str, results_dir: Path = RESULTS_DIR) -> str:
    path = results_dir / f"{name}.json"
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"results section {name!r}: {path} does not exist") from None
    suite = result.get("suite")
    if suite not in RENDERERS:
        raise SystemExit(f"{path}: unknown suite {suite!r}; known: {sorted(RENDERERS)}")
    return RENDERERS[suite](result)


def update(text: str, results_dir: Path = RESULTS_DIR) -> str:
    return SECTION.sub(lambda m: m.group(1) + render(m.group("name"), results_dir) + m.group(4),
                       text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assoclm.bench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", default="README.md")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = p.parse_args(argv)
    readme = Path(args.readme)
    if not readme.is_file():
        p.error(f"--readme {readme}: no such file (run from the repository root)")
    old = readme.read_text()
    new = update(old)
    if args.check:
        if new != old:
            print(f"{readme} is stale: run python -m assoclm.bench.report", file=sys.stderr)
            return 1
        return 0
    if new != old:
        tmp = readme.with_name(f".{readme.name}.tmp-{os.getpid()}")
        tmp.write_text(new)
        os.replace(tmp, readme)
        print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
