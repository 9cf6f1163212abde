"""Files and provenance: every file assoclm writes goes through one of the writers here.

A writer puts the bytes in a temporary file beside the target, flushes them to disk and
renames the file over the target, so a reader never sees a half-written file and a crash
leaves the previous file, if any, in place. :func:`atomic_directory` does the same for a
directory of files (a checkpoint). :func:`provenance` records what made a result: the
command, the git commit and the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

PathLike = str | os.PathLike[str]


def write_bytes_atomic(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``. The file is readable by everyone (0644), like one written with ``open``.
    Returns the path."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return write_file_atomic(path, write)


def write_file_atomic(path: PathLike, write: Callable[[str], None]) -> Path:
    """Atomically write a file that a library writes itself (``write(temporary_path)``, e.g.
    safetensors' ``save_model``): the temporary file beside ``path`` is renamed over it once
    ``write`` returns, and removed if anything raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: PathLike, text: str) -> Path:
    """:func:`write_bytes_atomic` of ``text`` in UTF-8."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: PathLike, obj: Any, indent: int | None = 2,
                      allow_nan: bool = True) -> Path:
    """``obj`` as JSON, written atomically; ``allow_nan=False`` refuses NaN and infinities
    (strict JSON readers reject them).

    The text is built before anything is written, so an object that cannot be written
    raises ``TypeError`` or ``ValueError`` and leaves no file behind.
    """
    return write_text_atomic(path, json.dumps(obj, indent=indent, allow_nan=allow_nan) + "\n")


def save_figure_atomic(fig, path: PathLike, dpi: int = 120) -> Path:
    """Save a matplotlib figure (format from the suffix, e.g. PNG) atomically."""
    import io

    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
    return write_bytes_atomic(path, buffer.getvalue())


@contextlib.contextmanager
def atomic_directory(final: PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``final``; when the block ends without an
    error it is renamed to ``final`` (replacing a directory already there), otherwise it is
    removed. A reader never sees ``final`` half-filled."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if final.exists():
            stale = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, stale)
            shutil.rmtree(stale)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_device(name: str) -> torch.device:
    """A torch device from 'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'.

    Raises:
        ValueError: not a device name, or a CUDA device this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
                         ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r}: CUDA is not available here")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r}: there are {torch.cuda.device_count()} CUDA devices")
    return device


def git_commit() -> str:
    """HEAD's hash, suffixed with '-dirty' when the work tree has uncommitted changes
    ("unknown" outside a git checkout)."""
    # src/assoclm/io.py -> the repository root
    root = Path(__file__).resolve().parents[2]
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


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Platform, Python, torch, CPU, thread count and device (and the GPU's name)."""
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


def provenance(module: str, argv: list[str], device: torch.device | str = "cpu"
               ) -> dict[str, Any]:
    """``{"command", "git_commit", "machine", "date"}`` of a run of ``python -m module
    argv``."""
    return {
        "command": command_line(module, argv),
        "git_commit": git_commit(),
        "machine": machine_info(device),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
