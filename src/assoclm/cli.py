"""The `assoclm` command: each subcommand parses its flags and calls a plain function."""

from __future__ import annotations

import argparse
import sys

COMMANDS = {
    "train": ("assoclm.train.cli", "train a model"),
    "generate": ("assoclm.generation", "stream text from a checkpoint"),
    "eval": ("assoclm.duplex.cli", "score a checkpoint (--task duplex)"),
    "chat": ("assoclm.duplex.chat", "full-duplex chat in the terminal"),
    "bench": ("assoclm.bench", "run a benchmark suite"),
    "eam": ("assoclm.train.eam", "train EAM (equilibrium Hopfield, MaskGIT) on copy/reverse/sort"),
}

BENCH_SUITES = {
    "ops": "assoclm.bench.ops",
    "recall": "assoclm.bench.recall",
    "lm": "assoclm.bench.lm",
    "train-speed": "assoclm.bench.speed",
    "decode": "assoclm.bench.decode",
    "train": "assoclm.bench.train",
    "eam": "assoclm.bench.eam",
    "depth": "assoclm.bench.depth",
    "positronic": "assoclm.bench.positronic",
    "duplex": "assoclm.bench.duplex",
    "all": "assoclm.bench.suite",
    "report": "assoclm.bench.report",
}


def _bench(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: assoclm bench SUITE [flags]\n\nsuites:")
        for name in BENCH_SUITES:
            print(f"  {name:12s} assoclm bench {name} --help for its flags")
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
    parser.add_argument(
        "command", choices=sorted(COMMANDS),
        help="; ".join(f"{name}: {help_}" for name, (_, help_) in COMMANDS.items())
        + ". 'assoclm COMMAND --help' lists a command's flags.",
    )
    args = parser.parse_args(argv[:1])
    if args.command == "bench":
        return _bench(argv[1:])
    import importlib

    module = importlib.import_module(COMMANDS[args.command][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
