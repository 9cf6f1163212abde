"""The training loop: stateful truncated BPTT over document lanes, exact resume.

Each of the B lanes of a :class:`~assoclm.data.LaneStream` reads one document in order,
``unroll_len`` tokens per step. With ``streaming`` the model state is carried (detached) from
one step to the next and zeroed for a lane when it starts a new document: the gradient is
truncated at the step boundary but the memory is not. Without it every step starts from an
empty memory.

Everything that decides the next loss lives in the checkpoint (weights, optimizer moments,
step, tokens, clock, data position, carried memory, RNG), so a resumed run continues with
exactly the losses the uninterrupted run would have had.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from assoclm import __version__
from assoclm.checkpoint import (
    load_checkpoint,
    load_trainer_state,
    optimizer_state_from_flat,
    optimizer_state_to_flat,
    resolve_checkpoint,
    save_checkpoint,
)
from assoclm.data import LaneStream
from assoclm.data.splits import VAL_SEED
from assoclm.io import resolve_device, write_text_atomic
from assoclm.models import build_model, model_spec
from assoclm.models.protocols import State
from assoclm.tokenizer import BaseTokenizer, BPETokenizer, ByteTokenizer
from assoclm.train.config import TrainConfig
from assoclm.train.evaluate import masked_cross_entropy, token_byte_lengths
from assoclm.train.plot import Ema, plot_metrics
from assoclm.train.progress import ProgressBar, StopOnSigint
from assoclm.train.schedule import learning_rate, param_groups
from assoclm.train.task import LanguageModelTask, Task

STATE_FORMAT = "assoclm.trainer/1"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


class TrainError(Exception):
    """A setting or input the trainer cannot work with; the message says what to change."""


@dataclass
class TrainResult:
    step: int
    tokens: int
    elapsed_s: float
    val_loss: float | None
    val_bpb: float | None
    checkpoint: Path
    interrupted: bool


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass; weights and optimizer stay float32."""
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, precision))


class Trainer:
    """Builds (or restores) everything a run needs; :meth:`run` trains.

    Args:
        config: trainer settings.
        model_config: the model's config as a dict (``vocab_size`` is taken from the
            tokenizer). Ignored on resume: the checkpoint's config is used.
        out: run directory for checkpoints, ``metrics.jsonl`` and ``loss.png``.
        resume: a checkpoint or run directory to continue from.
        progress: show a progress bar and messages on stderr.
        log: where messages go (default: stderr).
        task: what to train on and how to score it (``assoclm.train.task``); None:
            language modelling, for a config whose ``dataset_mode`` is "text". The task
            registry, ``assoclm.duplex.task.build_task``, makes the task of any config.
    """

    def __init__(self, config: TrainConfig, model_config: dict[str, Any],
                 out: str | os.PathLike[str], resume: str | os.PathLike[str] | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None,
                 task: Task | None = None):
        if task is None and config.dataset_mode == LanguageModelTask.name:
            task = LanguageModelTask(config)
        if task is None or task.name != config.dataset_mode:
            raise TrainError(f"dataset_mode {config.dataset_mode!r} needs its task object "
                             f"(assoclm.duplex.task.build_task); got "
                             f"{None if task is None else task.name!r}")
        self.config = config
        self.task = task
        self.out = Path(out)
        self.progress = progress
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._stop_requested = False
        try:
            self.device = resolve_device(config.device)
        except ValueError as exc:
            raise TrainError(str(exc)) from None
        self.autocast = autocast_context(self.device, config.precision)
        ckpt = resolve_checkpoint(resume) if resume is not None else None
        saved: dict[str, Any] = {}
        saved_tensors: dict[str, torch.Tensor] = {}
        if ckpt is not None:
            saved, saved_tensors = load_trainer_state(ckpt)
            if saved.get("format") != STATE_FORMAT:
                raise TrainError(f"{ckpt}: unknown trainer state format {saved.get('format')!r}")

        torch.manual_seed(config.seed)
        train_docs, val_docs, note = task.load_split(progress)
        if note:
            self._log(f"assoclm train: {note}")
        self._log(f"assoclm train: {len(train_docs)} training {task.unit}, "
                  f"{len(val_docs)} held out")
        texts = task.texts(train_docs)

        if ckpt is not None:
            self.model, self.tokenizer, _ = load_checkpoint(ckpt, self.device)
            self.model.train()
        else:
            self.tokenizer = self._make_tokenizer(texts)
            self.model = build_model(
                config.model, {**model_config, "vocab_size": self.tokenizer.vocab_size}
            ).to(self.device)
        self.val_docs = val_docs
        self.train_ids = task.tokenize(train_docs, self.tokenizer, config.seed)
        # Held-out data do not depend on --seed: every run is scored alike.
        self.val_ids = task.tokenize(val_docs, self.tokenizer, VAL_SEED)
        self.byte_lengths = token_byte_lengths(self.tokenizer)
        self.stream = LaneStream(self.train_ids, config.batch_size, config.unroll_len,
                                 seed=config.seed, pad_id=self.tokenizer.pad_id)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, config.weight_decay), lr=config.learning_rate,
            betas=(config.beta1, config.beta2), fused=self.device.type == "cuda" or None,
        )
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=config.precision == "float16")
        self.step = 0
        self.elapsed = 0.0
        self.memory: State | None = None
        self._owns_loss = "training_loss" in model_spec(config.model).capabilities
        self.last_eval: dict[str, float] | None = None
        if ckpt is not None:
            self._restore(saved, saved_tensors, ckpt)

    # ----------------------------------------------------------------------------- set-up
    def _make_tokenizer(self, texts: list[str]) -> BaseTokenizer:
        if self.config.tokenizer == "byte":
            return ByteTokenizer()
        start = time.perf_counter()
        # Lines, not whole documents: HF trains many moderate texts in parallel.
        lines = (line for text in texts for line in text.splitlines(keepends=True))
        tok = BPETokenizer.train(lines, vocab_size=self.config.vocab_size)
        self._log(f"assoclm train: byte-level BPE with {tok.vocab_size} ids trained on the "
                  f"training documents in {time.perf_counter() - start:.1f}s")
        return tok

    @property
    def data_spec(self) -> str:
        return self.task.data_spec

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`request_stop` was called (the run stops after this step)."""
        return self._stop_requested

    @property
    def tokens(self) -> int:
        return self.stream.tokens_seen

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _trainer_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        opt_meta, tensors = optimizer_state_to_flat(self.optimizer)
        if self.memory is not None:
            tensors.update({f"memory.{k}": v for k, v in self.memory.state_dict().items()})
        tensors["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "format": STATE_FORMAT,
            "assoclm_version": __version__,
            "step": self.step,
            "tokens": self.tokens,
            "elapsed_s": self.elapsed,
            # one flat mapping: the trainer's settings and the task's
            "train_config": self.run_config(),
            "stream": self.stream.state_dict(),
            "optimizer": opt_meta,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "last_eval": self.last_eval,
        }
        return state, tensors

    def _restore(self, saved: dict[str, Any], tensors: dict[str, torch.Tensor], ckpt: Path
                 ) -> None:
        try:
            self.stream.load_state_dict(saved["stream"])
        except ValueError as exc:
            raise TrainError(
                f"cannot resume from {ckpt}: the training data differ from the run's ({exc})"
            ) from None
        self.optimizer.load_state_dict(optimizer_state_from_flat(saved["optimizer"], tensors))
        if saved.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(saved["scaler"])
        memory = {k[len("memory."):]: v for k, v in tensors.items() if k.startswith("memory.")}
        if memory and self.config.streaming:
            state_type = type(self.model.init_state(1))
            self.memory = state_type.from_state_dict(memory).to(self.device)
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], self.device)
        self.step = int(saved["step"])
        self.elapsed = float(saved["elapsed_s"])
        self.last_eval = saved.get("last_eval")
        self._carry_metrics(ckpt)
        self._log(f"assoclm train: resumed from {ckpt} at step {self.step}, "
                  f"{self.tokens:,} tokens")

    def _carry_metrics(self, ckpt: Path) -> None:
        """Keep the metrics up to the checkpoint's step: drop lines a crash left after it,
        and copy them over when the resumed run writes to a new directory."""
        source = ckpt.parent.parent / METRICS_FILE
        target = self.out / METRICS_FILE
        if not source.is_file():
            return
        kept = [line for line in source.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= self.step]
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, "".join(line + "\n" for line in kept))

    # ------------------------------------------------------------------------------ loop
    def progress_fraction(self) -> float:
        c = self.config
        done = 0.0
        if c.max_steps is not None:
            done = max(done, self.step / c.max_steps)
        if c.max_tokens is not None:
            done = max(done, self.tokens / c.max_tokens)
        if c.time_budget is not None:
            done = max(done, self.elapsed / c.time_budget)
        return done

    def train_step(self) -> dict[str, float]:
        c = self.config
        lr = learning_rate(self.step, self.progress_fraction(), c.learning_rate,
                           c.warmup_steps, c.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self.stream.next_batch().to(self.device)
        state = None
        if c.streaming:
            if self.memory is None:
                self.memory = self.model.init_state(c.batch_size, self.device)
            state = self.memory.reset(batch.reset)
        parts: dict[str, float] = {}
        with self.autocast:
            if self._owns_loss:
                # a model with auxiliary objectives (z-loss, draft heads, ...) owns its loss
                loss, parts, _, new_state = self.model.training_loss(
                    batch.inputs, batch.targets, batch.loss_mask, state)
            else:
                logits, new_state = self.model(batch.inputs, state)
                n = batch.loss_mask.sum().clamp(min=1)
                loss = masked_cross_entropy(logits, batch.targets, batch.loss_mask).sum() / n
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if c.streaming:
            self.memory = new_state.detach()
        self.step += 1
        # "loss" stays the next-token cross entropy, comparable across models
        record = {"loss": parts.get("ce", float(loss.detach())), "lr": lr,
                  "grad_norm": float(grad_norm)}
        if parts:
            record["loss_total"] = float(loss.detach())
            record.update({f"loss_{k}": v for k, v in parts.items() if k != "ce"})
        return record

    def run_config(self) -> dict[str, Any]:
        """The run's settings as saved in checkpoints and summaries: the TrainConfig's fields
        and the task's settings, in one flat mapping."""
        task = self.task.settings.to_dict() if self.task.settings is not None else {}
        return {**self.config.to_dict(), **task}

    def evaluate(self) -> dict[str, Any]:
        result = self.task.evaluate(self.model, self.tokenizer, self.val_docs, self.val_ids,
                                    self.byte_lengths, self.autocast)
        self.last_eval = result
        return result

    def save(self) -> Path:
        state, tensors = self._trainer_state()
        return save_checkpoint(self.out, self.step, self.model, self.config.model,
                               self.tokenizer, state, tensors, keep=self.config.keep_checkpoints)

    def request_stop(self) -> None:
        """Finish the current step, save a checkpoint and return from :meth:`run`."""
        self._stop_requested = True

    def run(self, stop_after: int | None = None) -> TrainResult:
        """Train until a limit is reached (or ``stop_after`` steps in this call, or a stop
        request such as Ctrl-C); evaluate, checkpoint and plot at the end."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        metrics_path = self.out / METRICS_FILE
        checkpoint_every = c.checkpoint_every or c.eval_every or None
        bar = ProgressBar(self.progress, self.progress_fraction())
        handler = StopOnSigint(self)
        ema = Ema(0.95)
        steps_this_call = 0
        window_tokens, window_start = 0, time.perf_counter()
        with open(metrics_path, "a", encoding="utf-8") as metrics, handler:
            while self.progress_fraction() < 1.0 and not self._stop_requested:
                if stop_after is not None and steps_this_call >= stop_after:
                    break
                start = time.perf_counter()
                tokens_before = self.tokens
                record = self.train_step()
                steps_this_call += 1
                window_tokens += self.tokens - tokens_before
                ema.add(record["loss"])
                now = time.perf_counter()
                self.elapsed += now - start
                rate = window_tokens / max(now - window_start, 1e-9)
                if now - window_start > 5.0:
                    window_tokens, window_start = 0, now
                _write(metrics, {"kind": "train", "step": self.step, "tokens": self.tokens,
                                 **record, "tokens_per_s": rate, "elapsed_s": self.elapsed})
                bar.update(self.progress_fraction(), self.step, ema.value, rate)
                if c.eval_every and self.step % c.eval_every == 0 and \
                        self.progress_fraction() < 1.0:
                    self._timed_eval(metrics, bar)
                if checkpoint_every and self.step % checkpoint_every == 0:
                    self._timed(self.save)
            interrupted = self._stop_requested or (
                stop_after is not None and self.progress_fraction() < 1.0)
            if not interrupted or self.last_eval is None or \
                    self.last_eval.get("step") != self.step:
                self._timed_eval(metrics, bar)
            bar.close(finished=not interrupted)
            checkpoint = self.save()
        plot_metrics(metrics_path, self.out / PLOT_FILE, title=self._plot_title())
        if interrupted:
            self._log(f"assoclm train: stopped at step {self.step}; continue with "
                      f"'assoclm train --resume {self.out}'")
        return TrainResult(self.step, self.tokens, self.elapsed, self.last_eval["loss"],
                           self.last_eval["bpb"], checkpoint, interrupted)

    def _timed(self, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.elapsed += time.perf_counter() - start

    def _timed_eval(self, metrics, bar: ProgressBar) -> None:
        result = self._timed(self.evaluate)
        result["step"] = self.step
        record = {"kind": "eval", "step": self.step, "tokens": self.tokens,
                  "val_loss": result["loss"], "val_bpb": result["bpb"],
                  "val_tokens": result["tokens"], "elapsed_s": self.elapsed}
        line = (f"step {self.step:>6}  tokens {self.tokens:>11,}  held-out loss "
                f"{result['loss']:.4f}  bits/byte {result['bpb']:.4f}")
        extra_record, extra_line = self.task.eval_report(result)
        record.update(extra_record)
        if extra_line:
            line += "  " + extra_line
        _write(metrics, record)
        bar.write(line)

    def _plot_title(self) -> str:
        c = self.config
        return (f"{c.model} · {self.num_parameters / 1e6:.1f}M params · {self.data_spec} · "
                f"batch {c.batch_size}×{c.unroll_len}")


def _write(metrics, record: dict[str, Any]) -> None:
    metrics.write(json.dumps(record) + "\n")
    metrics.flush()
