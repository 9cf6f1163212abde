"""Benchmark suites. Each writes a JSON result (commit, machine, command) and a PNG plot.

``assoclm bench NAME [flags]`` runs one command: a suite of :data:`registry.SUITES`, or
``all`` (the suites ``bench all`` runs, one after another) or ``report`` (re-render the
results pages). :func:`run` is that dispatcher, :func:`usage` its listing.
"""

from __future__ import annotations

import importlib
import sys

from assoclm.bench.registry import SUITES

# command name -> (module whose main runs it, one line for the listing)
COMMANDS: dict[str, tuple[str, str]] = {
    **{s.name: (s.module, s.description) for s in SUITES},
    "all": ("assoclm.bench.suite",
            "run " + ", ".join(s.name for s in SUITES if s.in_all) + " one after another"),
    "report": ("assoclm.bench.report",
               "re-render the pages' results sections from benchmarks/results (--check)"),
}


def usage() -> str:
    """The listing of ``assoclm bench --help``: every command with its description."""
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: assoclm bench COMMAND [flags]", "", "commands:"]
    lines += [f"  {name:{width}s}  {description}"
              for name, (_, description) in COMMANDS.items()]
    lines += ["", "'assoclm bench COMMAND --help' lists a command's flags."]
    return "\n".join(lines)


def run(name: str, argv: list[str]) -> int:
    """Run ``assoclm bench NAME`` with ``argv`` (the flags after the name); the exit status.

    An unknown name prints the known ones to stderr and returns 2.
    """
    if name not in COMMANDS:
        print(f"assoclm bench: unknown suite {name!r}; choose from {sorted(COMMANDS)}",
              file=sys.stderr)
        return 2
    result = importlib.import_module(COMMANDS[name][0]).main(list(argv))
    return result if isinstance(result, int) else 0
