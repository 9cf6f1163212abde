"""The `assoclm` command: each subcommand parses its flags and calls a plain function."""

from __future__ import annotations

import argparse
import sys

BENCH_SUITES = {
    "ops": "assoclm.bench.ops",
    "report": "assoclm.bench.report",
}


def _bench(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: assoclm bench SUITE [flags]\n\nsuites:")
        for name, module in BENCH_SUITES.items():
            print(f"  {name:8s} python -m {module} --help for its flags")
        return 0 if argv else 2
    suite, rest = argv[0], argv[1:]
    if suite not in BENCH_SUITES:
        print(f"assoclm bench: unknown suite {suite!r}; choose from {sorted(BENCH_SUITES)}",
              file=sys.stderr)
        return 2
    import importlib

    result = importlib.import_module(BENCH_SUITES[suite]).main(rest)
    return result if isinstance(result, int) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="assoclm",
        description="Associative-memory language models: train, use and benchmark them.",
    )
    parser.add_argument("command", choices=["bench"], help="bench: run a benchmark suite")
    args = parser.parse_args(argv[:1])
    if args.command == "bench":
        return _bench(argv[1:])
    return 2


if __name__ == "__main__":
    sys.exit(main())
