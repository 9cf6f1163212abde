"""The benchmark suites and result renderers, listed once.

Every command of ``assoclm bench`` that runs a benchmark is a :class:`Suite` here: its
command name, the module that runs it (``python -m MODULE`` works too), a one-line
description, whether ``assoclm bench all`` runs it, and the kinds of result file it writes
(the ``"suite"`` field of the JSON). The module renders those files as well, so a suite's
runner and its renderer sit side by side. Two kinds of result file are written by commands
that are not suites (``assoclm train``, ``assoclm eval --task duplex``); their renderer
module is listed in :data:`COMMAND_RESULTS`.

``assoclm bench`` (the dispatcher in :mod:`assoclm.bench`), ``assoclm bench all``
(:mod:`assoclm.bench.suite`) and ``assoclm bench report`` (:mod:`assoclm.bench.report`) all
read these tables. Modules are imported only when used: listing the suites costs nothing.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ResultRenderer(Protocol):
    """What a module that renders result files provides."""

    def render(self, result: dict) -> str:
        """Markdown for the pages: the result's tables and the sentence saying how it was
        measured."""

    def stated_targets(self, result: dict) -> list[dict]:
        """The targets the result states, as ``{name, goal, measured, met}`` rows (empty
        when it states none)."""


@runtime_checkable
class SuiteModule(ResultRenderer, Protocol):
    """A suite's module: it renders its result files and runs the benchmark."""

    def main(self, argv: list[str] | None = None) -> Any:
        """Run the suite with command-line flags ``argv``; an int is the exit status."""


@dataclass(frozen=True)
class Suite:
    """One benchmark suite: ``assoclm bench NAME`` runs ``MODULE.main``.

    Attributes:
        name: the command name after ``assoclm bench``.
        module: the module that runs the suite and renders its result files.
        description: one line for ``assoclm bench --help``.
        in_all: whether ``assoclm bench all`` runs it.
        results: the ``"suite"`` values of the result files it writes.
    """

    name: str
    module: str
    description: str
    in_all: bool
    results: tuple[str, ...]


SUITES: tuple[Suite, ...] = (
    Suite("ops", "assoclm.bench.ops",
          "delta-rule op, forward + backward: chunked vs the per-token loop and fla",
          True, ("ops",)),
    Suite("recall", "assoclm.bench.recall",
          "MQAR and fact update: propagator, hebbian and transformer at equal parameters",
          True, ("recall",)),
    Suite("lm", "assoclm.bench.lm",
          "held-out bits per byte of the model families, trained alike", True, ("lm",)),
    Suite("train-speed", "assoclm.bench.speed",
          "training tokens/s against sequence length, Propagator vs Transformer",
          True, ("train-speed",)),
    Suite("decode", "assoclm.bench.decode",
          "per-token latency and state size against context length; time to first token",
          True, ("decode",)),
    Suite("train", "assoclm.bench.train",
          "Propagator training step: parallel vs per-token memory writes", False, ("train",)),
    Suite("eam", "assoclm.bench.eam",
          "EAM: sort within a time budget, training memory flat in solver depth",
          False, ("eam",)),
    Suite("depth", "assoclm.bench.depth",
          "recurrent depth: the depth dial, longer inputs, latent drift",
          False, ("depth-dial", "depth-ood", "depth-drift")),
    Suite("positronic", "assoclm.bench.positronic",
          "Positronic: ablations, speculative decoding, bits per byte vs the transformer",
          True, ("positronic",)),
    Suite("duplex", "assoclm.bench.duplex",
          "full-duplex protocol metrics of the model families, trained alike",
          True, ("duplex",)),
)

# Result files that commands other than the suites write, and the module rendering them:
# ``train-run`` is the summary.json of ``assoclm train``, ``duplex-eval`` the metrics file of
# ``assoclm eval --task duplex``.
COMMAND_RESULTS: dict[str, str] = {
    "train-run": "assoclm.bench.runs",
    "duplex-eval": "assoclm.bench.runs",
}

# result kind (the "suite" field of a result file) -> the module that renders it
RENDERERS: dict[str, str] = {
    **{kind: s.module for s in SUITES for kind in s.results},
    **COMMAND_RESULTS,
}


def suite_names() -> list[str]:
    """The suites' command names, in the order ``assoclm bench --help`` lists them."""
    return [s.name for s in SUITES]


def get_suite(name: str) -> Suite:
    """The suite called ``name``.

    Raises:
        KeyError: no suite has that name (the message lists those that do).
    """
    for s in SUITES:
        if s.name == name:
            return s
    raise KeyError(f"unknown suite {name!r}; choose from {', '.join(suite_names())}")


def renderer(kind: str) -> ModuleType:
    """The module (a :class:`ResultRenderer`) that renders result files whose ``"suite"``
    is ``kind``.

    Raises:
        ValueError: no module renders ``kind`` (the message lists the kinds that have one).
    """
    if kind not in RENDERERS:
        raise ValueError(f"unknown result kind {kind!r}; known: {sorted(RENDERERS)}")
    return importlib.import_module(RENDERERS[kind])


def render(result: dict) -> str:
    """A result file's Markdown, by the renderer of its kind."""
    return renderer(result["suite"]).render(result)


def stated_targets(result: dict) -> list[dict]:
    """The targets a result file states, as ``{name, goal, measured, met}`` rows, by the
    module of its kind (each kind keeps its targets in its own layout)."""
    return renderer(result["suite"]).stated_targets(result)
