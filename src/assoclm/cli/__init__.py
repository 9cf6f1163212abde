"""The `assoclm` command: one module per subcommand; each parses its flags and calls a
library function.

    assoclm train | generate | eval | chat | eam | bench   (assoclm COMMAND --help)
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module in this package, one line of help)
COMMANDS = {
    "train": ("train", "train a model"),
    "generate": ("generate", "stream text from a checkpoint"),
    "eval": ("eval", "score a checkpoint (--task duplex)"),
    "chat": ("chat", "full-duplex chat in the terminal"),
    "bench": ("bench", "run a benchmark suite"),
    "eam": ("eam", "train EAM (equilibrium Hopfield, MaskGIT) on copy/reverse/sort"),
}


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
    # Only the chosen command's module is imported: 'assoclm chat' does not load the
    # benchmarks.
    module = importlib.import_module(f"{__name__}.{COMMANDS[args.command][0]}")
    return module.main(argv[1:])
