"""A live full-duplex session: one constant-size model state driven by the protocol in real time.

The session feeds the model exactly the token stream the stream builder trains on
(``assoclm.duplex.stream``), one token per ``model.step``:

    [SESSION]                                      reset(): the memory starts empty
    [USER] u1 u2 ... un                            user_text(): one decision per token
    [USER_END] [MODEL] m1 m2 ... mk [MODEL_END]    respond(): stops when [MODEL_END] is drawn
    [USER_INTERRUPT] [MODEL_END] [USER] u'...      interrupt(): the model yields and listens

After each user token the model decides between ``[LISTEN]`` (the user is still talking) and
``[USER_END]`` (the user has finished, the model should answer): it takes the turn when
``logit[USER_END] − logit[LISTEN]`` exceeds ``end_margin`` (0: the larger logit wins;
``assoclm.duplex.metrics.turn_end_margin`` gives the margin that undoes the training
weights, and the held-out metrics score this same rule). Nothing ever re-reads the history:
the cost of a token does not depend on how many came before it, and the state's size never
changes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from assoclm.generation import StreamDecoder, sample_next
from assoclm.io import write_bytes_atomic
from assoclm.tokenizer import BaseTokenizer

_FORMAT = "assoclm.duplex-session/1"
PHASES = ("listening", "speaking", "idle")


@dataclass(frozen=True)
class Decision:
    """The model's decision after one user token: ``user_end`` True means it takes the turn."""

    token: str
    user_end: bool
    p_user_end: float


class DuplexSession:
    """Drive one model state through the full-duplex protocol.

    Args:
        model: a model with ``step(token [1], state)`` and ``init_state(1)`` (e.g. a
            Propagator trained with ``--dataset-mode duplex_chat``), in eval mode.
        tokenizer: the tokenizer it was trained with.
        max_response_tokens: a response stops after this many tokens even without
            ``[MODEL_END]``.
        temperature, top_k, top_p: sampling of the response (temperature 0: greedy).
        seed: seeds the sampler.
        end_margin: the model takes the turn when its ``[USER_END]`` logit exceeds its
            ``[LISTEN]`` logit by more than this (see ``turn_end_margin``).
    """

    def __init__(self, model: nn.Module, tokenizer: BaseTokenizer, max_response_tokens: int = 256,
                 temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
                 end_margin: float = 0.0):
        if max_response_tokens < 1:
            raise ValueError(f"max_response_tokens must be >= 1; got {max_response_tokens}")
        if not math.isfinite(end_margin):
            raise ValueError(f"end_margin must be a finite number; got {end_margin}")
        self.end_margin = float(end_margin)
        self.model = model
        self.tokenizer = tokenizer
        self.max_response_tokens = max_response_tokens
        self.sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.ids = {name: tokenizer.control_id(name) for name in tokenizer.control_tokens}
        # A response may use any text id and [MODEL_END]; no other control id.
        self._banned = [i for i in tokenizer.special_ids if i != self.ids["[MODEL_END]"]]
        self.tokens_fed = 0
        self.reset()

    # ------------------------------------------------------------------------ internals
    @torch.inference_mode()
    def _feed(self, token_id: int) -> torch.Tensor:
        """One model step; returns the logits [1, V] for what comes after ``token_id``."""
        token = torch.tensor([token_id], device=self.device)
        self.logits, self.state = self.model.step(token, self.state)
        self.tokens_fed += 1
        return self.logits

    def _feed_control(self, name: str) -> torch.Tensor:
        return self._feed(self.ids[name])

    def _decide(self) -> tuple[bool, float]:
        gap = float(self.logits[0, self.ids["[USER_END]"]] - self.logits[0, self.ids["[LISTEN]"]])
        # p_user_end: the odds after the margin, as a probability between the two choices.
        return gap > self.end_margin, 1.0 / (1.0 + math.exp(min(self.end_margin - gap, 700.0)))

    def _flush_pending(self) -> None:
        # The last drawn response token was shown but not yet fed: feed it now.
        if self._pending is not None:
            self._feed(self._pending)
            self._pending = None

    # ------------------------------------------------------------------------ protocol
    @property
    def phase(self) -> str:
        """"listening" (inside a user turn), "speaking" (a response is open) or "idle"."""
        return self._phase

    @property
    def state_nbytes(self) -> int:
        return self.state.nbytes

    def reset(self) -> None:
        """Start a new session: empty memory, then ``[SESSION]``."""
        self.state = self.model.init_state(1, device=self.device)
        self._pending: int | None = None
        self._phase = "idle"
        self._user_finished = False
        self.yielded: bool | None = None
        self._feed_control("[SESSION]")

    def user_text(self, text: str) -> list[Decision]:
        """Feed what the user says (any amount, e.g. a word as it is recognised).

        Opens a user turn with ``[USER]`` if none is open. During a response, this is an
        interrupt (see :meth:`interrupt`). Returns one decision per token; the last one says
        whether the model considers the user finished (then call :meth:`respond`).
        """
        if self._phase == "speaking":
            return self.interrupt(text)
        if self._phase == "idle":
            self._feed_control("[USER]")
            self._phase = "listening"
        decisions = []
        for token_id in self.tokenizer.encode(text):
            self._feed(token_id)
            end, p_end = self._decide()
            decisions.append(Decision(self.tokenizer.decode([token_id]), end, p_end))
        if decisions:
            self._user_finished = decisions[-1].user_end
        return decisions

    @property
    def user_finished(self) -> bool:
        """True when the model predicted ``[USER_END]`` after the last user token."""
        return self._user_finished

    def end_turn(self) -> None:
        """Declare the user's turn over (as if the model had predicted ``[USER_END]``)."""
        self._user_finished = True

    def respond(self) -> Iterator[str]:
        """The model's answer, as text pieces; stops at ``[MODEL_END]`` or on an interrupt.

        Feeds ``[USER_END] [MODEL]``, then draws one token per step. A drawn token is fed
        when the next one is needed, so an interrupt right after a piece still puts that
        token into the memory before ``[USER_INTERRUPT]``, exactly as in training.
        """
        if self._phase == "speaking":
            raise RuntimeError("a response is already open; interrupt() or finish it first")
        if self._phase == "idle":  # the model speaks first, or again: open an empty turn
            self._feed_control("[USER]")
        self._feed_control("[USER_END]")
        self._feed_control("[MODEL]")
        self._phase = "speaking"
        self._user_finished = False
        decoder = StreamDecoder(self.tokenizer, skip_control=True)
        for _ in range(self.max_response_tokens):
            if self._phase != "speaking":  # interrupted between two pieces
                return
            self._flush_pending()
            with torch.inference_mode():
                token = int(sample_next(self.logits, generator=self.generator,
                                        banned_ids=self._banned, **self.sampling))
            if token == self.ids["[MODEL_END]"]:
                break
            self._pending = token
            piece = decoder.push(token)
            if piece:
                yield piece
        if self._phase != "speaking":
            return
        self._flush_pending()
        self._feed_control("[MODEL_END]")
        self._phase = "idle"
        tail = decoder.flush()
        if tail:
            yield tail

    def interrupt(self, text: str = "") -> list[Decision]:
        """The user speaks while the model is answering: the model yields and listens.

        Feeds the last shown response token, ``[USER_INTERRUPT]`` (the model should predict
        ``[MODEL_END]``), ``[MODEL_END]``, then the user's words as in :meth:`user_text`.
        Returns the decisions on the user's words.
        """
        if self._phase != "speaking":
            raise RuntimeError("interrupt() is only possible while the model is speaking")
        self._flush_pending()
        self._feed_control("[USER_INTERRUPT]")
        self.yielded = bool(int(self.logits[0].argmax()) == self.ids["[MODEL_END]"])
        self._feed_control("[MODEL_END]")
        self._phase = "idle"
        return self.user_text(text) if text else []

    # ---------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the session (state, last logits, phase) to a safetensors file, atomically."""
        path = Path(path)
        tensors = {f"state.{k}": v for k, v in self.state.state_dict().items()}
        tensors["logits"] = self.logits.detach().contiguous()
        meta = {"format": _FORMAT, "phase": self._phase, "pending": self._pending,
                "user_finished": self._user_finished, "tokens_fed": self.tokens_fed}
        tensors["generator"] = self.generator.get_state()
        data = safetensors.torch.save({k: v.cpu() for k, v in tensors.items()},
                                      metadata={"session": json.dumps(meta)})
        return write_bytes_atomic(path, data)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore a session written by :meth:`save` into this one (same model).

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a readable session file (cut short, corrupt, another
                format) or does not fit this model; the message names the file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"session file not found: {path}")
        try:
            with safe_open(str(path), "pt") as f:
                meta = json.loads((f.metadata() or {}).get("session", "{}"))
            tensors = safetensors.torch.load_file(str(path), device=str(self.device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable duplex session file ({exc}); it may be "
                             "cut short or corrupt") from None
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a duplex session file (format {meta.get('format')!r})")
        state_type = type(self.state)
        memory = {k[len("state."):]: v for k, v in tensors.items() if k.startswith("state.")}
        state = state_type.from_state_dict(memory)
        fresh = self.model.init_state(1, device=self.device)
        if not _fits(state.state_dict(), fresh.state_dict()):
            raise ValueError(f"{path}: the saved state does not fit this model")
        self.state = state
        self.logits = tensors["logits"]
        self.generator.set_state(tensors["generator"].cpu())
        self._phase = meta["phase"]
        self._pending = meta["pending"]
        self._user_finished = meta["user_finished"]
        self.tokens_fed = meta["tokens_fed"]


def _fits(saved: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]) -> bool:
    """Same tensors with the same shapes as a fresh state's, except along the axes that are
    empty in a fresh state (a KV cache's time axis): those grow with the tokens seen."""
    if sorted(saved) != sorted(fresh):
        return False
    for name, f in fresh.items():
        t = saved[name]
        if t.dim() != f.dim() or any(a != b and b != 0 for a, b in zip(t.shape, f.shape)):
            return False
    return True
