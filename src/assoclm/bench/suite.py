"""Run the benchmark suites one after another.

    assoclm bench all --quick --out-dir /tmp/bench     # every suite's quick variant
    assoclm bench all                                  # the full suites (CPU: hours)

The suites run are those of ``assoclm.bench.registry.SUITES`` marked ``in_all``, in the
registry's order. Each writes ``<out-dir>/<suite>-<device>.json`` and its PNG; ``--data`` is
passed to the ``lm`` and ``positronic`` suites (e.g. a local text file where the built-in
corpora cannot be fetched). Run ``assoclm bench report`` afterwards to re-render the results
pages.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from assoclm.bench.registry import SUITES, get_suite

# The suites of `bench all` that read text data, and so take its --data.
TEXT_SUITES = ("lm", "positronic")


def all_suites() -> list[str]:
    """The names of the suites ``bench all`` runs by default, in order."""
    return [s.name for s in SUITES if s.in_all]


def suite_flags(name: str, args: argparse.Namespace) -> list[str]:
    """The flags ``bench all`` gives suite ``name``."""
    device = args.device.split(":")[0]
    out = Path(args.out_dir) / f"{name}-{device}.json"
    flags = ["--out", str(out), "--device", args.device] + (["--quick"] if args.quick else [])
    if name == "lm":
        flags += ["--runs", args.runs]
    if name in TEXT_SUITES and args.data:
        flags += ["--data", args.data]
    return flags


def main(argv: list[str] | None = None) -> int:
    names_all = all_suites()
    p = argparse.ArgumentParser(prog="assoclm bench all", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--suites", default=",".join(names_all),
                   help=f"comma list (default all: {','.join(names_all)})")
    p.add_argument("--out-dir", default="benchmarks/results")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", help="text data for the lm and positronic suites")
    p.add_argument("--runs", default="runs/bench-lm", help="lm suite: training runs go here")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = [s for s in names if s not in names_all]
    if unknown or not names:
        p.error(f"unknown suite(s) {unknown}; choose from {', '.join(names_all)}")
    for name in names:
        flags = suite_flags(name, args)
        print(f"== assoclm bench {name} {' '.join(flags)}", flush=True)
        importlib.import_module(get_suite(name).module).main(flags)
    return 0


if __name__ == "__main__":
    sys.exit(main())
