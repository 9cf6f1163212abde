"""What every benchmark needs: provenance, side-by-side timing, atomic result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

from assoclm.io import write_text_atomic


def git_commit() -> str:
    """HEAD's hash, suffixed with '-dirty' when the work tree has uncommitted changes."""
    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: torch.device | str = "cpu") -> dict:
    device = torch.device(device)
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def command_line(module: str, argv: list[str]) -> str:
    """The command that reproduces this run, as one would type it again."""
    return shlex.join(["python", "-m", module, *argv])


def provenance(module: str, argv: list[str], device: torch.device | str = "cpu") -> dict:
    return {
        "command": command_line(module, argv),
        "git_commit": git_commit(),
        "machine": machine_info(device),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def synchronize(device: torch.device) -> None:
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
    return statistics.median(xs)


def write_json_atomic(path: str | Path, obj: dict) -> Path:
    """Write JSON to a temporary name beside `path`, then rename: never a half-written file."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_figure_atomic(fig, path: str | Path) -> Path:
    """Save a matplotlib figure to a temporary name, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


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
