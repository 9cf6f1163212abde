"""Checkpoints: a directory per save, written under a temporary name and renamed into place.

Layout of a run directory (``--out``)::

    run/
      latest                      text file: the newest checkpoint, e.g. "checkpoints/step-0000400"
      checkpoints/step-0000400/
        model.safetensors         weights (no pickle)
        config.json               {"model_type": "propagator", ...the model config...}
        tokenizer.json            the tokenizer the model was trained with
        trainer_state.json        step, tokens, clock, data position, train config, ...
        trainer_state.safetensors optimizer moments, carried memory state, RNG states

A checkpoint directory is complete before it gets its final name, and ``latest`` is replaced
atomically after that, so a crash at any moment leaves the previous checkpoint usable.
Anything that reads a checkpoint accepts either the run directory (it follows ``latest``) or
one checkpoint directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from assoclm.io import write_text_atomic
from assoclm.models import model_classes
from assoclm.tokenizer import TOKENIZER_FILENAME, BaseTokenizer, load_tokenizer

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
LATEST = "latest"
CHECKPOINTS = "checkpoints"


class CheckpointError(Exception):
    """A checkpoint path that cannot be read; the message says what is missing or wrong."""


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    model: nn.Module,
    model_type: str,
    tokenizer: BaseTokenizer,
    trainer_state: dict[str, Any] | None = None,
    trainer_tensors: dict[str, torch.Tensor] | None = None,
    keep: int = 1,
) -> Path:
    """Save a checkpoint as ``run_dir/checkpoints/step-<step>`` and point ``latest`` at it.

    Args:
        run_dir: the run directory; created if missing.
        step: optimizer steps taken so far (names the directory).
        model: the model; its ``config`` attribute (a Config) goes into ``config.json``.
        model_type: the registry name of the model (``assoclm.models.MODELS``).
        tokenizer: saved as ``tokenizer.json``.
        trainer_state: JSON-able trainer state (optional: a bare model checkpoint has none).
        trainer_tensors: tensors of the trainer state (optimizer moments, carried memory).
        keep: how many of the newest checkpoints to keep; older ones are deleted.

    Returns:
        the checkpoint directory.
    """
    run = Path(run_dir)
    parent = run / CHECKPOINTS
    parent.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    try:
        save_model(model, str(tmp / MODEL_FILE), metadata={"format": "pt"})
        config = {"model_type": model_type, **model.config.to_dict()}
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        tokenizer.save(tmp / TOKENIZER_FILENAME)
        if trainer_state is not None:
            (tmp / STATE_JSON).write_text(json.dumps(trainer_state, indent=1) + "\n")
            tensors = {k: v.detach().contiguous().cpu() for k, v in (trainer_tensors or {}).items()}
            save_file(tensors, str(tmp / STATE_TENSORS))
        os.chmod(tmp, 0o755)
        final = parent / name
        if final.exists():  # the same step saved again (e.g. a resumed run that stops at once)
            stale = parent / f".{name}.old-{os.getpid()}"
            os.replace(final, stale)
            shutil.rmtree(stale)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(run / LATEST, f"{CHECKPOINTS}/{name}\n")
    _prune(parent, keep)
    return final


def _prune(parent: Path, keep: int) -> None:
    saved = sorted(p for p in parent.glob("step-*") if p.is_dir())
    for old in saved[: max(0, len(saved) - max(keep, 1))]:
        shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint directory from a checkpoint directory or a run directory (via ``latest``).

    Raises:
        CheckpointError: the path does not exist, or is neither kind of directory.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint path not found: {p}")
    if (p / CONFIG_FILE).is_file():
        return p
    latest = p / LATEST
    if latest.is_file():
        target = p / latest.read_text().strip()
        if not (target / CONFIG_FILE).is_file():
            raise CheckpointError(f"{latest} points at {target}, which is not a checkpoint")
        return target
    raise CheckpointError(
        f"{p} is not a checkpoint: expected a directory with {CONFIG_FILE} (a checkpoint) "
        f"or with a '{LATEST}' file (a run directory written by 'assoclm train')"
    )


def read_model_config(ckpt: Path) -> tuple[str, dict[str, Any]]:
    """(model_type, config dict) from a checkpoint's ``config.json``."""
    try:
        config = json.loads((ckpt / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {ckpt / CONFIG_FILE}: {exc}") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise CheckpointError(f"{ckpt / CONFIG_FILE} has no 'model_type'")
    return config.pop("model_type"), config


def load_checkpoint(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[nn.Module, BaseTokenizer, Path]:
    """Load ``(model, tokenizer, checkpoint_dir)``; the model is in eval mode on ``device``.

    Raises:
        CheckpointError: a missing or unreadable file; the message names it.
    """
    ckpt = resolve_checkpoint(path)
    model_type, config = read_model_config(ckpt)
    try:
        config_cls, model_cls = model_classes(model_type)
        model = model_cls(config_cls.from_dict(config))
    except ValueError as exc:
        raise CheckpointError(f"{ckpt / CONFIG_FILE}: {exc}") from None
    weights = ckpt / MODEL_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {ckpt} has no {MODEL_FILE}")
    missing, unexpected = load_model(model, str(weights), strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match the {model_type} config: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    try:
        tokenizer = load_tokenizer(ckpt)
    except (FileNotFoundError, ValueError) as exc:
        raise CheckpointError(str(exc)) from None
    return model.to(device).eval(), tokenizer, ckpt


def load_trainer_state(ckpt: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and tensor halves of a checkpoint's trainer state."""
    json_path, tensor_path = ckpt / STATE_JSON, ckpt / STATE_TENSORS
    if not json_path.is_file() or not tensor_path.is_file():
        raise CheckpointError(
            f"{ckpt} has no trainer state ({STATE_JSON} + {STATE_TENSORS}); it can be used "
            "for generation but not resumed"
        )
    try:
        state = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{json_path}: invalid JSON ({exc})") from None
    return state, load_file(str(tensor_path))
