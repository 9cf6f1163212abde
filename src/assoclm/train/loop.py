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
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assoclm import __version__
from assoclm.data import Document, LaneStream, load_documents, split_documents
from assoclm.io import resolve_device, write_text_atomic
from assoclm.models import build_model
from assoclm.models.state import MemoryState
from assoclm.tokenizer import BaseTokenizer, BPETokenizer, ByteTokenizer
from assoclm.train.checkpoint import (
    load_checkpoint,
    load_trainer_state,
    resolve_checkpoint,
    save_checkpoint,
)
from assoclm.train.config import TrainConfig
from assoclm.train.evaluate import evaluate, masked_cross_entropy, token_byte_lengths
from assoclm.train.plot import Ema, plot_metrics
from assoclm.train.schedule import learning_rate, param_groups

STATE_FORMAT = "assoclm.trainer/1"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"
# A single document (one big text file) is cut into this many parts at line breaks, so that
# whole parts can be held out.
PARTS_OF_ONE_DOCUMENT = 100
VAL_SEED = 1_000_003


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


def split_for_validation(docs: list, val_fraction: float) -> tuple[list, list, str]:
    """Train/validation split by document (or dialogue) name; one text document is first
    cut into parts."""
    note = ""
    if len(docs) == 1 and isinstance(docs[0], Document):
        lines = docs[0].text.splitlines(keepends=True)
        per = max(1, math.ceil(len(lines) / PARTS_OF_ONE_DOCUMENT))
        parts = ["".join(lines[i : i + per]) for i in range(0, len(lines), per)]
        docs = [Document(f"{docs[0].name}#part{i:03d}", t) for i, t in enumerate(parts)]
        note = f"one document: cut into {len(docs)} parts at line breaks, held out by part"
    if len(docs) < 2:
        raise TrainError("need at least two documents (or one with two lines) to hold one out")
    # The split does not depend on --seed: runs with different seeds score on the same text.
    train, val = split_documents(docs, val_fraction=val_fraction, seed=0)
    return train, val, note


def data_spec(config: TrainConfig) -> str:
    """The sources a run reads: text documents, or the dialogue mix in duplex mode."""
    if config.dataset_mode == "duplex_chat":
        from assoclm.data.dialogues import DEFAULT_DUPLEX_MIX

        spec = config.duplex_mix or DEFAULT_DUPLEX_MIX
        return f"{spec},{config.data}" if config.data else spec  # local files join the mix
    return config.text_data


def load_split(config: TrainConfig, progress: bool = True) -> tuple[list, list, str]:
    """(train, held-out, note) documents, or dialogues in duplex mode, as the run sees them."""
    if config.dataset_mode == "duplex_chat":
        from assoclm.data.dialogues import load_dialogues, parse_memory_options

        options = parse_memory_options(config.memory_options) if config.memory_options else None
        docs = load_dialogues(data_spec(config), n_memory=config.memory_dialogues, seed=0,
                              progress=progress, memory_options=options)
    else:
        docs = load_documents(data_spec(config), progress=progress)
    return split_for_validation(docs, config.val_fraction)


def tokenize_split(config: TrainConfig, docs: list, tokenizer: BaseTokenizer, seed: int
                   ) -> list:
    """Token arrays (text) or labelled duplex streams (interrupts synthesised with ``seed``)."""
    if config.dataset_mode == "duplex_chat":
        from assoclm.data.duplex import LossWeights, build_streams

        weights = LossWeights(listen=config.listen_weight, answer=config.answer_weight)
        return build_streams(docs, tokenizer, weights, p_interrupt=config.p_interrupt,
                             seed=seed)
    return [np.asarray(x, dtype=np.int64)
            for x in tokenizer.encode_batch([d.text for d in docs])]


def _optimizer_to_flat(opt: torch.optim.Optimizer
                       ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    sd = opt.state_dict()
    tensors = {}
    for index, entries in sd["state"].items():
        for key, value in entries.items():
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            tensors[f"optimizer.{index}.{key}"] = value
    return {"param_groups": sd["param_groups"]}, tensors


def _optimizer_from_flat(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


class Trainer:
    """Builds (or restores) everything a run needs; :meth:`run` trains.

    Args:
        config: trainer settings.
        model_config: the model's config as a dict (``vocab_size`` is taken from the
            tokenizer). Ignored on resume: the checkpoint's config is used.
        out: run directory for checkpoints, ``metrics.jsonl`` and ``loss.png``.
        resume: a checkpoint or run directory to continue from.
        progress: show a progress bar and messages on stderr.
    """

    def __init__(self, config: TrainConfig, model_config: dict[str, Any],
                 out: str | os.PathLike[str], resume: str | os.PathLike[str] | None = None,
                 progress: bool = True, log: Callable[[str], None] | None = None):
        self.config = config
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
        duplex = config.dataset_mode == "duplex_chat"
        train_docs, val_docs, note = load_split(config, progress)
        if note:
            self._log(f"assoclm train: {note}")
        kind = "dialogues" if duplex else "documents"
        self._log(f"assoclm train: {len(train_docs)} training {kind}, {len(val_docs)} held out")
        texts = [e.text for d in train_docs for e in d.events] if duplex else \
            [d.text for d in train_docs]

        if ckpt is not None:
            self.model, self.tokenizer, _ = load_checkpoint(ckpt, self.device)
            self.model.train()
        else:
            self.tokenizer = self._make_tokenizer(texts)
            self.model = build_model(
                config.model, {**model_config, "vocab_size": self.tokenizer.vocab_size}
            ).to(self.device)
        self.val_dialogues = val_docs if duplex else []
        self.train_ids = tokenize_split(config, train_docs, self.tokenizer, config.seed)
        # Held-out duplex streams do not depend on --seed: every run is scored alike.
        self.val_ids = tokenize_split(config, val_docs, self.tokenizer, VAL_SEED)
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
        self.memory: MemoryState | None = None
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
        return data_spec(self.config)

    @property
    def tokens(self) -> int:
        return self.stream.tokens_seen

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def _trainer_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        opt_meta, tensors = _optimizer_to_flat(self.optimizer)
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
            "train_config": self.config.to_dict(),
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
        self.optimizer.load_state_dict(_optimizer_from_flat(saved["optimizer"], tensors))
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
            if hasattr(self.model, "training_loss"):
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

    def evaluate(self) -> dict[str, Any]:
        c = self.config
        if c.dataset_mode == "duplex_chat":
            from assoclm.duplex.evaluate import evaluate_duplex
            from assoclm.duplex.metrics import turn_end_margin

            result = evaluate_duplex(self.model, self.tokenizer, self.val_ids,
                                     self.val_dialogues, c.batch_size, c.unroll_len,
                                     c.eval_tokens, max_probes=c.eval_probes,
                                     autocast=self.autocast, byte_lengths=self.byte_lengths,
                                     end_margin=turn_end_margin(c.listen_weight))
        else:
            result = evaluate(self.model, self.val_ids, self.byte_lengths, c.batch_size,
                              c.unroll_len, c.eval_tokens, self.autocast)
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
        bar = _ProgressBar(self.progress, self.progress_fraction())
        handler = _StopOnSigint(self)
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

    def _timed_eval(self, metrics, bar: _ProgressBar) -> None:
        result = self._timed(self.evaluate)
        result["step"] = self.step
        record = {"kind": "eval", "step": self.step, "tokens": self.tokens,
                  "val_loss": result["loss"], "val_bpb": result["bpb"],
                  "val_tokens": result["tokens"], "elapsed_s": self.elapsed}
        line = (f"step {self.step:>6}  tokens {self.tokens:>11,}  held-out loss "
                f"{result['loss']:.4f}  bits/byte {result['bpb']:.4f}")
        if "protocol" in result:
            record.update(protocol=result["protocol"], memory_recall=result["memory_recall"])
            line += "  " + _protocol_line(result)
        _write(metrics, record)
        bar.write(line)

    def _plot_title(self) -> str:
        c = self.config
        return (f"{c.model} · {self.num_parameters / 1e6:.1f}M params · {self.data_spec} · "
                f"batch {c.batch_size}×{c.unroll_len}")


def _protocol_line(result: dict[str, Any]) -> str:
    """decision / listen / turn-taking / recall as short percentages for the log."""
    proto = result["protocol"]
    parts = []
    for key, short in (("decision_accuracy", "decision"), ("listen_accuracy", "listen"),
                       ("turn_taking_precision", "turn-taking"),
                       ("interrupt_yield_accuracy", "yield")):
        value = (proto.get(key) or {}).get("value")
        parts.append(f"{short} {'-' if value is None else f'{100 * value:.1f}%'}")
    recall = result.get("memory_recall") or {}
    value = (recall.get("memory_recall_updated") or {}).get("value")
    parts.append(f"recall(updated) {'-' if value is None else f'{100 * value:.1f}%'}")
    return "  ".join(parts)


def _write(metrics, record: dict[str, Any]) -> None:
    metrics.write(json.dumps(record) + "\n")
    metrics.flush()


class _ProgressBar:
    """tqdm over the run's progress in permille (integers: no float drift past 100 %), with
    step, loss and tokens/s."""

    def __init__(self, enabled: bool, start: float):
        self.bar = None
        self.done = min(1000, int(1000 * start))
        if enabled:
            from tqdm.auto import tqdm

            fmt = "{percentage:3.0f}%|{bar:24}| {elapsed}<{remaining}{postfix}"
            self.bar = tqdm(total=1000, initial=self.done, file=sys.stderr, bar_format=fmt,
                            mininterval=0.5, dynamic_ncols=True)

    def update(self, fraction: float, step: int, loss: float, rate: float) -> None:
        if self.bar is None:
            return
        target = min(1000, int(1000 * fraction))
        self.bar.set_postfix_str(f"step {step} loss {loss:.3f} {rate:,.0f} tok/s", refresh=False)
        self.bar.update(target - self.done)
        self.done = target

    def write(self, message: str) -> None:
        if self.bar is None:
            print(message, file=sys.stderr, flush=True)
        else:
            self.bar.write(message, file=sys.stderr)

    def close(self, finished: bool) -> None:
        if self.bar is not None:
            if finished:
                self.bar.update(1000 - self.done)
            self.bar.close()


class _StopOnSigint:
    """First Ctrl-C: finish the step, checkpoint and stop. Second Ctrl-C: stop at once."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.previous = None

    def _handle(self, signum, frame):
        if self.trainer._stop_requested:
            raise KeyboardInterrupt
        self.trainer.request_stop()
        print("\nassoclm train: stopping after this step and saving a checkpoint "
              "(Ctrl-C again to abort)", file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
