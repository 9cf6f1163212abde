"""A training run's directory: clearing it for a fresh run, and its ``summary.json``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from torch import nn

from assoclm.checkpoint import CHECKPOINTS, LATEST
from assoclm.io import provenance, write_json_atomic
from assoclm.models.state import MemoryState
from assoclm.train.loop import METRICS_FILE, PLOT_FILE, Trainer, TrainResult
from assoclm.train.plot import read_metrics

SUMMARY_FILE = "summary.json"


def remove_run(out: Path) -> None:
    """Delete what a previous run wrote in ``out`` (and nothing else)."""
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    for name in (LATEST, METRICS_FILE, PLOT_FILE):
        (out / name).unlink(missing_ok=True)


def describe_state(model: nn.Module) -> str:
    """One line on what the model keeps of the context: a constant-size memory or a cache."""
    state = model.init_state(1)
    if isinstance(state, MemoryState):
        return f"memory state: {state.nbytes:,} bytes per sequence, whatever its length"
    c = model.config
    return (f"KV cache: {c.kv_cache_bytes(1):,} bytes per token of context, up to "
            f"{c.max_context:,} tokens ({c.kv_cache_bytes(c.max_context):,} bytes)")


def write_summary(out: Path, argv: list[str], trainer: Trainer, result: TrainResult,
                  sample: dict[str, Any] | None) -> Path:
    """``summary.json``: the run's final numbers with the command, commit and machine
    (suite ``train-run``, rendered by ``assoclm bench report``)."""
    train_records, _ = read_metrics(out / METRICS_FILE)
    step_rates = sorted(r["tokens_per_s"] for r in train_records[len(train_records) // 10:])
    model = trainer.model
    summary = {
        "suite": "train-run",
        "provenance": provenance("assoclm.cli", ["train", *argv], trainer.device),
        "model": trainer.config.model,
        "parameters": trainer.num_parameters,
        "model_config": model.config.to_dict(),
        "train_config": trainer.run_config(),
        "data": trainer.data_spec,
        "tokenizer": {"kind": trainer.tokenizer.kind, "vocab_size": trainer.tokenizer.vocab_size},
        "memory_state_bytes": model.init_state(1).nbytes,
        "state": describe_state(model),
        "steps": result.step,
        "tokens": result.tokens,
        "elapsed_s": result.elapsed_s,
        "tokens_per_s_overall": result.tokens / max(result.elapsed_s, 1e-9),
        "tokens_per_s_training_median": step_rates[len(step_rates) // 2] if step_rates else None,
        "val_loss": result.val_loss,
        "val_bpb": result.val_bpb,
        "val_tokens": (trainer.last_eval or {}).get("tokens"),
        "interrupted": result.interrupted,
        "sample": sample,
    }
    # write_json_atomic builds the whole text first: nothing is written if it is not JSON
    return write_json_atomic(out / SUMMARY_FILE, summary)
