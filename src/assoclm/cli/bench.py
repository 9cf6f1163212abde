"""`assoclm bench COMMAND [flags]`: run a benchmark suite, all of them, or re-render the
results pages. The suites and their flags live in ``assoclm.bench``'s one registry."""

from __future__ import annotations

from assoclm import bench


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(bench.usage())
        # no command at all is a usage error; asking for help is not
        return 0 if argv else 2
    return bench.run(argv[0], argv[1:])
