"""What every benchmark needs: side-by-side timing, flag helpers and result files."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from assoclm.io import write_json_atomic


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so a timer stops when
    the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    cases: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """Time each case `repeats` times, taking turns (A B C, B C A, ...) so that a noisy
    machine slows every case alike. Returns seconds per call, per case."""
    device = torch.device(device)
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            synchronize(device)
            start = time.perf_counter()
            cases[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


def median(xs: list[float]) -> float:
    """The median of timings: robust to the odd slow run on a shared machine."""
    return statistics.median(xs)


def int_list(text: str) -> list[int]:
    """argparse type: '512,1024' or '1e6' -> positive integers."""
    try:
        values = [int(float(x)) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"values must be >= 1; got {text!r}")
    return values


def name_list(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """argparse type: a comma list of names, each one of `allowed`."""
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown name(s) {bad or [text]}; choose from {', '.join(allowed)}")
        return names
    return parse


def write_result(result: dict, out: str | Path, plot: Callable[[dict, Path], None] | None
                 ) -> Path:
    """Write a suite's JSON result, then its PNG beside it (unless ``plot`` is None)."""
    path = write_json_atomic(out, result)
    print(f"wrote {path}")
    if plot is not None:
        plot(result, path.with_suffix(".png"))
        print(f"wrote {path.with_suffix('.png')}")
    return path


def apply_quick(args: argparse.Namespace, argv: list[str], **values) -> None:
    """Set the --quick values, except for flags the user gave: they win."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    for name, value in values.items():
        if "--" + name.replace("_", "-") not in given:
            setattr(args, name, value)


def require_positive(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     names: tuple[str, ...]) -> None:
    """parser.error naming the first of `names` that is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
