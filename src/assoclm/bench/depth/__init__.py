"""Recurrent depth at CPU scale: three experiments, one command each.

    python -m assoclm.bench.depth dial  [flags]    # (a) accuracy against test depth
    python -m assoclm.bench.depth ood   [flags]    # (b) the same models on longer inputs
    python -m assoclm.bench.depth drift [flags]    # (c) latent drift and re-grounding
    python -m assoclm.bench.depth EXPERIMENT --quick    # seconds, for tests

Each writes a JSON result (provenance, config, rows) and a PNG beside it, of kind
``depth-dial``, ``depth-ood`` or ``depth-drift``; :func:`render` turns any of them into the
Markdown table of docs/EAM.md. The model is :mod:`assoclm.models.recurrent_depth`.
"""

from __future__ import annotations

import sys

from assoclm.bench.depth import dial, drift

EXPERIMENTS = ("dial", "ood", "drift")

# result kind -> its renderer
RENDERERS = {"depth-dial": dial.render_dial, "depth-ood": dial.render_ood,
             "depth-drift": drift.render}


def render(result: dict) -> str:
    """The Markdown table of a depth result, by its kind (``result["suite"]``)."""
    return RENDERERS[result["suite"]](result)


def stated_targets(result: dict) -> list[dict]:
    """The depth experiments state no targets: they measure, they do not judge."""
    return []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not argv or argv[0] not in EXPERIMENTS:
        got = repr(argv[0]) if argv else "nothing"
        print(f"usage: python -m assoclm.bench.depth {{{','.join(EXPERIMENTS)}}} [flags]\n"
              f"an experiment must come first; got {got}", file=sys.stderr)
        return 2
    kind, rest = argv[0], argv[1:]
    if kind == "drift":
        return drift.main(rest)
    return dial.main(kind, rest)


__all__ = ["EXPERIMENTS", "main", "render", "stated_targets"]
