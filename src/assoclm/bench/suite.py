"""Run the benchmark suites one after another, then re-render the results pages.

    assoclm bench all --quick --out-dir /tmp/bench     # every suite's quick variant
    assoclm bench all                                  # the full suites (CPU: hours)

Each suite writes ``<out-dir>/<suite>-<device>.json`` and its PNG; ``--data`` is passed to
the ``lm`` and ``positronic`` suites (e.g. a local text file where the built-in corpora
cannot be fetched).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

SUITES = {
    "ops": "assoclm.bench.ops",
    "recall": "assoclm.bench.recall",
    "lm": "assoclm.bench.lm",
    "train-speed": "assoclm.bench.speed",
    "decode": "assoclm.bench.decode",
    "positronic": "assoclm.bench.positronic",
    "duplex": "assoclm.bench.duplex",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="assoclm bench all", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--suites", default=",".join(SUITES),
                   help=f"comma list (default all: {','.join(SUITES)})")
    p.add_argument("--out-dir", default="benchmarks/results")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", help="text data for the lm suite")
    p.add_argument("--runs", default="runs/bench-lm", help="lm suite: training runs go here")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    names = [s.strip() for s in args.suites.split(",") if s.strip()]
    unknown = [s for s in names if s not in SUITES]
    if unknown or not names:
        p.error(f"unknown suite(s) {unknown}; choose from {', '.join(SUITES)}")
    device = args.device.split(":")[0]
    for name in names:
        out = Path(args.out_dir) / f"{name}-{device}.json"
        flags = ["--out", str(out), "--device", args.device] + (["--quick"] if args.quick else [])
        if name == "lm":
            flags += ["--runs", args.runs] + (["--data", args.data] if args.data else [])
        if name == "positronic" and args.data:
            flags += ["--data", args.data]
        print(f"== assoclm bench {name} {' '.join(flags)}", flush=True)
        importlib.import_module(SUITES[name]).main(flags)
    return 0


if __name__ == "__main__":
    sys.exit(main())
