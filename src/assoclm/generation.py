"""Text generation: parallel prefill, then one ``step`` per new token on the carried state.

The prompt goes through ``model(tokens, state)`` in chunks of at most ``prefill_chunk`` tokens
with the state carried between chunks; every new token then costs exactly one
``model.step(token, state)``. Nothing ever re-reads the history, so for a model with a
constant-size state (the Propagator) each token costs the same however long the text gets.
Only the model contract is used (``forward``/``step``/``init_state``), so a model whose
state is a KV cache generates through the same code.

Sampling order: banned ids are removed, the logits are divided by the temperature, then
top-k and top-p (nucleus) keep the most likely ids; temperature 0 is greedy (argmax).
A stop id ends the generation when it is sampled; it is not returned.

The command ``assoclm generate`` (``assoclm.cli.generate``) streams text with it.
"""

from __future__ import annotations

import codecs
import itertools
import math
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import nn

from assoclm.config import check_float, check_int
from assoclm.tokenizer import NUM_CONTROL, BaseTokenizer

# top-p compares a float32 cumulative sum with p: a mass that equals p up to rounding
# (0.5 + 0.3 against 0.8) counts as reaching it.
TOP_P_SLACK = 1e-6


def check_sampling(temperature: float, top_k: int, top_p: float) -> None:
    """Raise ValueError naming the bad value and its allowed range.

    temperature in [0, inf) (0 = greedy), top_k an integer >= 0 (0 = off),
    top_p in (0, 1] (1 = off).
    """
    check_float("sampling", "temperature", temperature, 0, math.inf, high_open=True)
    check_int("sampling", "top_k", top_k, minimum=0)
    check_float("sampling", "top_p", top_p, 0, 1, low_open=True)


def _banned_index(banned_ids: Iterable[int] | None, vocab_size: int,
                  device: torch.device) -> torch.Tensor | None:
    """Validated banned ids as a LongTensor [N] on ``device``; None when nothing is banned."""
    if banned_ids is None:
        return None
    ids = set(banned_ids)
    for token_id in ids:
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise ValueError(f"banned ids must be integers; got {token_id!r}")
        if not 0 <= token_id < vocab_size:
            raise ValueError(f"banned id {token_id} is outside the vocabulary [0, {vocab_size})")
    if len(ids) == vocab_size:
        raise ValueError(f"banned ids cover the whole vocabulary of {vocab_size}; "
                         "nothing is left to sample")
    return torch.tensor(sorted(ids), dtype=torch.long, device=device) if ids else None


def _filter(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
            banned: torch.Tensor | None) -> torch.Tensor:
    """filter_logits on already validated arguments; logits [B, V] -> log-probs [B, V]."""
    scores = logits.float()
    if banned is not None:
        scores = scores.index_fill(-1, banned, -math.inf)
    if temperature == 0:
        best = scores.argmax(-1, keepdim=True)
        return torch.full_like(scores, -math.inf).scatter_(-1, best, 0.0)
    scores = scores / temperature
    vocab_size = scores.shape[-1]
    if 0 < top_k < vocab_size:
        # Keep exactly k ids (a threshold on the k-th value would keep every tie).
        keep = torch.zeros_like(scores, dtype=torch.bool)
        keep.scatter_(-1, scores.topk(top_k, dim=-1).indices, True)
        scores = scores.masked_fill(~keep, -math.inf)
    if top_p < 1:
        sorted_probs, order = scores.softmax(-1).sort(-1, descending=True)
        mass_before = sorted_probs.cumsum(-1) - sorted_probs
        drop_sorted = mass_before >= top_p - TOP_P_SLACK
        # the most likely id always stays
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, -math.inf)
    return scores.log_softmax(-1)


def _check_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                  banned_ids: Iterable[int] | None) -> torch.Tensor | None:
    """Validate the sampling arguments and logits; returns the banned ids as a tensor."""
    check_sampling(temperature, top_k, top_p)
    if logits.dim() != 2 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float tensor [B, V]; got {logits.dtype} "
                         f"{list(logits.shape)}")
    return _banned_index(banned_ids, logits.shape[-1], logits.device)


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0, banned_ids: Iterable[int] | None = None) -> torch.Tensor:
    """The log-probabilities that :func:`sample_next` samples from.

    Args:
        logits: [B, V] next-token logits (any float dtype; computed in float32).
        temperature: >= 0; the logits are divided by it. 0 = greedy: all the mass goes to
            the argmax (the first one on ties).
        top_k: >= 0; keep the k most likely ids. 0 = off; k >= V is off too.
        top_p: in (0, 1]; keep the smallest set of most likely ids whose probability
            (after banning, temperature and top-k) reaches p; always at least one. 1 = off.
        banned_ids: ids never to sample (e.g. control tokens); None bans nothing.

    Returns:
        [B, V] float32 log-probabilities, renormalised over the kept ids; -inf elsewhere.

    Raises:
        ValueError: a bad argument; the message names it and the allowed range.
    """
    banned = _check_logits(logits, temperature, top_k, top_p, banned_ids)
    return _filter(logits, temperature, top_k, top_p, banned)


def _sample(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
            banned: torch.Tensor | None, generator: torch.Generator | None) -> torch.Tensor:
    log_probs = _filter(logits, temperature, top_k, top_p, banned)
    if temperature == 0:
        return log_probs.argmax(-1)
    return torch.multinomial(log_probs.exp(), 1, generator=generator).squeeze(-1)


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                top_p: float = 1.0, generator: torch.Generator | None = None,
                banned_ids: Iterable[int] | None = None) -> torch.Tensor:
    """Draw one next token per row.

    Args:
        logits: [B, V] next-token logits.
        temperature, top_k, top_p, banned_ids: as in :func:`filter_logits`.
        generator: random source, on the device of ``logits`` (None: torch's global one).

    Returns:
        [B] int64 token ids on the device of ``logits``.

    Raises:
        ValueError: a bad argument; the message names it and the allowed range.
    """
    banned = _check_logits(logits, temperature, top_k, top_p, banned_ids)
    return _sample(logits, temperature, top_k, top_p, banned, generator)


def _model_device(model: nn.Module) -> torch.device:
    tensor = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if tensor is None else tensor.device


def _check_prompt(prompt_ids: Sequence[int]) -> None:
    if len(prompt_ids) == 0:
        raise ValueError("the prompt is empty: generation needs at least one prompt token")
    for token_id in prompt_ids:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"prompt ids must be integers >= 0; got {token_id!r}")


def _check_stop_ids(stop_ids: Iterable[int]) -> frozenset[int]:
    ids = frozenset(stop_ids)
    for token_id in ids:
        if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
            raise ValueError(f"stop ids must be integers >= 0; got {token_id!r}")
    return ids


def check_counts(max_new_tokens: int, seed: int, prefill_chunk: int) -> None:
    """Raise ValueError unless max_new_tokens >= 0, seed >= 0 and prefill_chunk >= 1."""
    check_int("generate", "max_new_tokens", max_new_tokens, minimum=0)
    check_int("generate", "seed", seed, minimum=0)
    check_int("generate", "prefill_chunk", prefill_chunk, minimum=1)


class Generation(Iterator[int]):
    """The new token ids of one :func:`generate` call, one per ``next()``.

    The work for a token happens inside ``next()``, under ``torch.inference_mode()``, which
    is left before the id is handed back: the caller's code between tokens never runs in
    inference mode. A token is fed to the model only when the following one is asked for,
    so the last token costs no step.

    Attributes:
        state: the model state after the prompt and every returned token but the last
            (None before the first ``next()``).
        prompt_tokens: length of the prompt.
        new_tokens: how many ids were returned so far (a stop id is not counted).
        stopped_by: the stop id that ended the generation, or None.
    """

    def __init__(self, model: nn.Module, prompt_ids: Sequence[int], max_new_tokens: int, *,
                 temperature: float, top_k: int, top_p: float, seed: int,
                 prefill_chunk: int, banned_ids: Iterable[int],
                 stop_ids: frozenset[int] = frozenset()):
        self.state = None
        self.prompt_tokens = len(prompt_ids)
        self.new_tokens = 0
        self.stopped_by: int | None = None
        self._stop_ids = stop_ids
        self._model = model
        self._prompt = list(prompt_ids)
        self._max_new_tokens = max_new_tokens
        self._sampling = (temperature, top_k, top_p)
        self._prefill_chunk = prefill_chunk
        self._banned_ids = list(banned_ids)
        self._device = _model_device(model)
        self._generator = torch.Generator(device=self._device).manual_seed(seed)
        self._banned: torch.Tensor | None = None
        self._last: torch.Tensor | None = None

    def __iter__(self) -> Generation:
        return self

    def _prefill(self) -> torch.Tensor:
        """Run the prompt in chunks with the state carried; returns the last logits [1, V]."""
        tokens = torch.tensor([self._prompt], dtype=torch.long, device=self._device)
        state = self._model.init_state(1, device=self._device)
        for start in range(0, tokens.shape[1], self._prefill_chunk):
            logits, state = self._model(tokens[:, start:start + self._prefill_chunk], state)
        self.state = state
        return logits[:, -1]

    def __next__(self) -> int:
        if self.stopped_by is not None or self.new_tokens >= self._max_new_tokens:
            raise StopIteration
        with torch.inference_mode():
            if self._last is None:
                logits = self._prefill()
                self._banned = _banned_index(self._banned_ids, logits.shape[-1], self._device)
            else:
                logits, self.state = self._model.step(self._last, self.state)
            # [1] int64
            self._last = _sample(logits, *self._sampling, self._banned, self._generator)
            token_id = int(self._last.item())
        if token_id in self._stop_ids:
            self.stopped_by = token_id
            raise StopIteration
        self.new_tokens += 1
        return token_id


def generate(model: nn.Module, prompt_ids: Sequence[int], max_new_tokens: int, *,
             temperature: float = 0.8, top_k: int = 50, top_p: float = 0.95, seed: int = 0,
             prefill_chunk: int = 256, banned_ids: Iterable[int] | None = None,
             stop_ids: Iterable[int] = ()) -> Generation:
    """Continue ``prompt_ids``, yielding up to ``max_new_tokens`` new ids one at a time.

    Batch 1, on the device of the model's parameters; the model is used as it is (put it in
    eval mode first). The prompt is prefilled with ``model(tokens [1, <=prefill_chunk],
    state)`` calls, then each new token costs one ``model.step(token [1], state)``.

    Args:
        model: any model with ``forward(tokens [B, T], state) -> (logits [B, T, V], state)``,
            ``step(token [B], state) -> (logits [B, V], state)`` and
            ``init_state(batch_size, device)``.
        prompt_ids: T >= 1 token ids.
        max_new_tokens: >= 0.
        temperature, top_k, top_p: as in :func:`filter_logits`.
        seed: >= 0; seeds a ``torch.Generator`` of its own: the same seed gives the same ids.
        prefill_chunk: >= 1; the most prompt tokens per forward call.
        banned_ids: ids never sampled; None bans the control ids ``0 .. NUM_CONTROL-1``,
            ``()`` bans nothing. The chat ids' places depend on the tokenizer: for plain
            text pass ``tokenizer.special_ids`` (control and chat ids), as the CLI does.
        stop_ids: sampling one of these ends the generation; it is not yielded (and
            ``stopped_by`` holds it).

    Returns:
        an iterator of ints (:class:`Generation`, which also exposes the state).

    Raises:
        ValueError: a bad argument (checked here, before any work; banned ids outside the
            vocabulary are found at the first ``next()``, once the vocabulary size is known).
    """
    check_sampling(temperature, top_k, top_p)
    _check_prompt(prompt_ids)
    check_counts(max_new_tokens, seed, prefill_chunk)
    stops = _check_stop_ids(stop_ids)
    banned = range(NUM_CONTROL) if banned_ids is None else banned_ids
    return Generation(model, prompt_ids, max_new_tokens, temperature=temperature, top_k=top_k,
                      top_p=top_p, seed=seed, prefill_chunk=prefill_chunk, banned_ids=banned,
                      stop_ids=stops)


class StreamDecoder:
    """Token ids in, text out as soon as it is complete.

    A token may end in the middle of a multi-byte UTF-8 character; its bytes are held back
    until the character is complete. ``"".join(push(i) for i in ids) + flush()`` equals
    ``tokenizer.decode(ids, skip_control)``: invalid bytes become U+FFFD, and a control or
    chat id ends the pending bytes and is rendered as its name (or dropped with
    ``skip_control``).
    """

    def __init__(self, tokenizer: BaseTokenizer, skip_control: bool = False):
        self._tokenizer = tokenizer
        self._skip_control = skip_control
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text completed by ``token_id`` (possibly empty).

        Raises:
            ValueError: ``token_id`` is outside the tokenizer's vocabulary.
        """
        piece = self._tokenizer.token_bytes(token_id)
        if piece is not None:
            return self._decoder.decode(piece)
        text = self.flush()
        # a control or chat id: decode renders (or skips) its name
        return text + self._tokenizer.decode([token_id], self._skip_control)

    def flush(self) -> str:
        """Whatever bytes are still held back (U+FFFD for an incomplete character)."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text
