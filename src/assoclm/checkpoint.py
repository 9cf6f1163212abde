"""Checkpoints: save and load every registered model, in one format, without the trainer.

A checkpoint is a directory::

    model.safetensors          weights (no pickle)
    config.json                {"model_type": "propagator", ...the model config...}
    tokenizer.json             the tokenizer (token models; EAM's digit tasks have none)
    trainer_state.json         step, tokens, clock, data position, train config, ...  (optional)
    trainer_state.safetensors  optimizer moments, carried memory state, RNG states   (optional)

A training run keeps its checkpoints under ``run/checkpoints/step-<step>/`` with a text file
``run/latest`` naming the newest. A checkpoint directory is complete before it gets its
final name (``assoclm.io.atomic_directory``) and ``latest`` is replaced atomically after
that, so a crash at any moment leaves the previous checkpoint usable. Anything that reads a
checkpoint accepts either a run directory (it follows ``latest``) or one checkpoint
directory. Inference (generation, the duplex session, a server) loads models through
:func:`load_model` / :func:`load_checkpoint` and never imports the trainer.

The optimizer state is stored flat (``optimizer.<param index>.<key>`` tensors plus the JSON
``param_groups``) by :func:`optimizer_state_to_flat` and read back by
:func:`optimizer_state_from_flat`, so the whole trainer state stays pickle-free.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from assoclm.io import (
    atomic_directory,
    write_bytes_atomic,
    write_file_atomic,
    write_json_atomic,
    write_text_atomic,
)
from assoclm.models import model_spec
from assoclm.tokenizer import TOKENIZER_FILENAME, BaseTokenizer, load_tokenizer

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"
LATEST = "latest"
CHECKPOINTS = "checkpoints"

PathLike = str | os.PathLike[str]


class CheckpointError(Exception):
    """A checkpoint path that cannot be read; the message says what is missing or wrong."""


def write_model(directory: PathLike, model: nn.Module, model_type: str,
                tokenizer: BaseTokenizer | None = None) -> Path:
    """Write ``model.safetensors``, ``config.json`` and (if given) ``tokenizer.json`` into
    ``directory``, each file atomically.

    Args:
        directory: created if missing.
        model: the model; its ``config`` attribute (a Config) goes into ``config.json``.
        model_type: the registry name of the model (``assoclm.models.MODELS``).
        tokenizer: saved as ``tokenizer.json`` when given.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model_spec(model_type)  # fail on an unregistered name before writing anything
    # safetensors' save_model drops the duplicates of shared (tied) tensors; load_model
    # restores them.
    write_file_atomic(directory / MODEL_FILE,
                      lambda tmp: safetensors.torch.save_model(model, tmp,
                                                               metadata={"format": "pt"}))
    config = {"model_type": model_type, **model.config.to_dict()}
    write_text_atomic(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save(directory / TOKENIZER_FILENAME)
    return directory


def save_checkpoint(
    run_dir: PathLike,
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
    name = f"step-{step:07d}"
    # The same step saved again (a resumed run that stops at once) replaces the old one.
    with atomic_directory(parent / name) as tmp:
        write_model(tmp, model, model_type, tokenizer)
        if trainer_state is not None:
            write_json_atomic(tmp / STATE_JSON, trainer_state, indent=1)
            tensors = {k: v.detach().contiguous().cpu() for k, v in (trainer_tensors or {}).items()}
            write_bytes_atomic(tmp / STATE_TENSORS, safetensors.torch.save(tensors))
    write_text_atomic(run / LATEST, f"{CHECKPOINTS}/{name}\n")
    _prune(parent, keep)
    return parent / name


def _prune(parent: Path, keep: int) -> None:
    saved = sorted(p for p in parent.glob("step-*") if p.is_dir())
    for old in saved[: max(0, len(saved) - max(keep, 1))]:
        shutil.rmtree(old, ignore_errors=True)


def resolve_checkpoint(path: PathLike) -> Path:
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


def read_safetensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file.

    Raises:
        CheckpointError: the file is missing, or is not a readable safetensors file (cut
            short, corrupt, not safetensors); the message names the file.
    """
    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        return safetensors.torch.load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); it may be "
                              "cut short or corrupt") from None


def load_model(path: PathLike, device: torch.device | str = "cpu"
               ) -> tuple[nn.Module, str, Path]:
    """Load ``(model, model_type, checkpoint_dir)`` of any registered model, in eval mode on
    ``device``.

    Raises:
        CheckpointError: a missing, unreadable or mismatched file; the message names it.
    """
    ckpt = resolve_checkpoint(path)
    model_type, config = read_model_config(ckpt)
    try:
        spec = model_spec(model_type)
        model = spec.model(spec.config.from_dict(config))
    except ValueError as exc:
        raise CheckpointError(f"{ckpt / CONFIG_FILE}: {exc}") from None
    weights = ckpt / MODEL_FILE
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {ckpt} has no {MODEL_FILE}")
    try:
        missing, unexpected = safetensors.torch.load_model(model, str(weights), strict=False)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({exc}); it may "
                              "be cut short or corrupt") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match the {model_type} config: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    return model.to(device).eval(), model_type, ckpt


def load_checkpoint(path: PathLike, device: torch.device | str = "cpu"
                    ) -> tuple[nn.Module, BaseTokenizer, Path]:
    """Load ``(model, tokenizer, checkpoint_dir)`` of a token model, in eval mode on ``device``.

    Raises:
        CheckpointError: a missing or unreadable file; the message names it.
    """
    model, _, ckpt = load_model(path, device)
    try:
        tokenizer = load_tokenizer(ckpt)
    except (FileNotFoundError, ValueError) as exc:
        raise CheckpointError(str(exc)) from None
    return model, tokenizer, ckpt


def load_trainer_state(ckpt: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON and tensor halves of a checkpoint's trainer state.

    Raises:
        CheckpointError: the checkpoint has no trainer state, or a file of it is unreadable.
    """
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
    return state, read_safetensors(tensor_path)


def optimizer_state_to_flat(optimizer: torch.optim.Optimizer
                            ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(JSON part, tensors) of an optimizer's state: ``{"param_groups": ...}`` and one
    tensor ``optimizer.<param index>.<key>`` per state entry (numbers become 0-d tensors)."""
    sd = optimizer.state_dict()
    tensors = {}
    for index, entries in sd["state"].items():
        for key, value in entries.items():
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            tensors[f"optimizer.{index}.{key}"] = value
    return {"param_groups": sd["param_groups"]}, tensors


def optimizer_state_from_flat(meta: dict[str, Any], tensors: dict[str, torch.Tensor]
                              ) -> dict[str, Any]:
    """The ``optimizer.load_state_dict`` argument from :func:`optimizer_state_to_flat`'s
    output (tensors not named ``optimizer.*`` are ignored)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
