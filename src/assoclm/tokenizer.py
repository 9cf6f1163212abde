"""Tokenizers with the full-duplex control tokens reserved at ids 0..8 and the chat tokens last.

Two tokenizers share one interface (:class:`BaseTokenizer`):

* :class:`ByteTokenizer`: ids 0..8 are the control tokens, ids 9..264 are the 256 bytes of
  the UTF-8 encoding, ids 265..268 are the chat tokens (vocabulary 269). No training, no
  state.
* :class:`BPETokenizer`: byte-level BPE trained with Hugging Face ``tokenizers``. The HF
  tokenizer knows only the byte-level BPE (its ids start at 0); this wrapper reserves ids
  0..8 for the control tokens, shifts every HF id by 9 and puts the 4 chat tokens after
  the last HF id. All 256 bytes are always in the vocabulary, so any string encodes (byte
  fallback).

The chat tokens (:data:`CHAT_TOKENS`, ChatML's ``<|im_start|>`` and ``<|im_end|>`` plus
``<think>`` and ``</think>``) come *after* the text ids so that the control ids and every
byte/BPE id keep the values they had before chat tokens existed: models and results from
then stay valid. A tokenizer file written before then (format version 1) loads without
chat tokens (``has_chat`` is false) and with its old vocabulary size.

Neither kind of special token is registered with HF as a special or added token: those
match literal text, so a user typing "[USER]" or "<|im_end|>" would inject its id. Here
encoding plain text can never produce a control or chat id; they enter a token stream only
when the caller puts them there (``tok.control_id("[USER]")``, ``tok.chat_id("<think>")``,
:meth:`BaseTokenizer.encode_chat`). Text that spells a special token encodes as its bytes.

Round trip: ``decode(encode(s)) == s`` for every ``str`` that is valid Unicode text, i.e.
every string without lone surrogates (U+D800..U+DFFF cannot be written as UTF-8; encoding
such a string raises ``ValueError``). Nothing is normalised, stripped or prefixed. Decoding
an id sequence whose bytes are not valid UTF-8 (for example one that stops in the middle
of a multi-byte character) never fails: the broken bytes become U+FFFD.

A tokenizer is saved as one JSON file (``tokenizer.json``) holding ``"kind"``, the control
tokens, the chat tokens and, for BPE, the HF tokenizer's own JSON; :func:`load_tokenizer`
reads either kind, in the current format and in version 1 (no chat tokens).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from assoclm.byte_level import hf_id_bytes
from assoclm.io import write_text_atomic

CONTROL_TOKENS: tuple[str, ...] = (
    "[PAD]",
    "[SESSION]",
    "[USER]",
    "[LISTEN]",
    "[USER_END]",
    "[MODEL]",
    "[USER_INTERRUPT]",
    "[MODEL_END]",
    "[SESSION_END]",
)
NUM_CONTROL: int = len(CONTROL_TOKENS)
CONTROL_IDS: MappingProxyType[str, int] = MappingProxyType(
    {name: i for i, name in enumerate(CONTROL_TOKENS)}
)
PAD_ID: int = CONTROL_IDS["[PAD]"]

# Placed after the text ids; their ids depend on the vocabulary size (``tok.chat_id``).
CHAT_TOKENS: tuple[str, ...] = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")
NUM_CHAT: int = len(CHAT_TOKENS)
# A role is plain text after <|im_start|>, as in ChatML.
CHAT_ROLES: tuple[str, ...] = ("system", "user", "assistant")
# The smallest vocabulary a new tokenizer can have: control ids, the 256 bytes, chat ids.
MIN_VOCAB_SIZE: int = NUM_CONTROL + 256 + NUM_CHAT

TOKENIZER_FILENAME = "tokenizer.json"
_FORMAT = "assoclm-tokenizer"
# Version 2 added "chat_tokens"; version 1 files have none.
_FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)


def _unencodable_text_error(text: str) -> ValueError:
    """Build the error for a ``str`` that has no UTF-8 form (it contains a lone surrogate)."""
    for index, char in enumerate(text):
        if 0xD800 <= ord(char) <= 0xDFFF:
            return ValueError(
                f"cannot encode text: lone surrogate U+{ord(char):04X} at index {index} has no "
                "UTF-8 encoding (only valid Unicode text can be tokenised)"
            )
    return ValueError("cannot encode text: it has no UTF-8 encoding")


class BaseTokenizer:
    """Interface shared by :class:`ByteTokenizer` and :class:`BPETokenizer`.

    Ids ``0 .. NUM_CONTROL-1`` are the control tokens in :data:`CONTROL_TOKENS` order; the
    last ``len(chat_tokens)`` ids are the chat tokens in :data:`CHAT_TOKENS` order (none for
    a tokenizer loaded from a version-1 file); every other id stands for a fixed, non-empty
    byte string. Subclasses call :meth:`_set_pieces` with the text ids' bytes and implement
    ``encode``, ``_payload`` and ``_from_payload``; decoding, special-id lookups, chat
    formatting and saving live here.
    """

    kind: ClassVar[str]
    # one entry per id: None for a control or chat id, the id's bytes otherwise
    _pieces: list[bytes | None]
    _chat_tokens: tuple[str, ...]
    _chat_ids: dict[str, int]

    def _set_pieces(self, text_pieces: list[bytes], chat: bool) -> None:
        """Lay out the ids: control ids, then ``text_pieces``, then the chat ids if ``chat``."""
        self._chat_tokens = CHAT_TOKENS if chat else ()
        self._pieces = [None] * NUM_CONTROL + text_pieces + [None] * len(self._chat_tokens)
        first = len(self._pieces) - len(self._chat_tokens)
        self._chat_ids = {name: first + i for i, name in enumerate(self._chat_tokens)}

    @property
    def vocab_size(self) -> int:
        """Number of ids, control ids included; valid ids are ``0 .. vocab_size-1``."""
        return len(self._pieces)

    @property
    def pad_id(self) -> int:
        """Id of ``[PAD]`` (always 0)."""
        return PAD_ID

    @property
    def control_tokens(self) -> tuple[str, ...]:
        """Names of the control tokens; the name at index i has id i."""
        return CONTROL_TOKENS

    def control_id(self, name: str) -> int:
        """Return the id of control token ``name`` (e.g. ``"[USER]"`` -> 2).

        Raises:
            ValueError: ``name`` is not one of :data:`CONTROL_TOKENS`.
        """
        try:
            return CONTROL_IDS[name]
        except (KeyError, TypeError):
            allowed = ", ".join(CONTROL_TOKENS)
            raise ValueError(f"unknown control token {name!r}; allowed: {allowed}") from None

    def is_control(self, token_id: int) -> bool:
        """True when ``token_id`` is a control id (``0 <= token_id < NUM_CONTROL``)."""
        return 0 <= token_id < NUM_CONTROL

    @property
    def has_chat(self) -> bool:
        """True when the chat tokens are in the vocabulary (false for a version-1 file)."""
        return bool(self._chat_tokens)

    @property
    def chat_tokens(self) -> tuple[str, ...]:
        """Names of the chat tokens (:data:`CHAT_TOKENS`, or ``()`` without chat tokens)."""
        return self._chat_tokens

    def chat_id(self, name: str) -> int:
        """Return the id of chat token ``name`` (e.g. ``"<|im_end|>"`` -> 266 for bytes).

        Raises:
            ValueError: ``name`` is not one of :data:`CHAT_TOKENS`, or this tokenizer has
                no chat tokens.
        """
        if not isinstance(name, str) or name not in CHAT_TOKENS:
            allowed = ", ".join(CHAT_TOKENS)
            raise ValueError(f"unknown chat token {name!r}; allowed: {allowed}")
        self._require_chat(f"chat token {name}")
        return self._chat_ids[name]

    def is_chat(self, token_id: int) -> bool:
        """True when ``token_id`` is a chat id (one of the last ``len(chat_tokens)`` ids)."""
        return self.vocab_size - len(self._chat_tokens) <= token_id < self.vocab_size

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Every id that is not text: the control ids, then the chat ids.

        Ban these to generate plain text (``generate(..., banned_ids=tok.special_ids)``).
        """
        return (*range(NUM_CONTROL), *self._chat_ids.values())

    def _require_chat(self, what: str) -> None:
        if not self._chat_tokens:
            raise ValueError(
                f"{what} needs the chat tokens, but this tokenizer has no chat tokens (it was "
                "saved before they were reserved; retrain with this assoclm to get them)"
            )

    def encode_chat(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> list[int]:
        """Encode a conversation in ChatML, the roles as plain text after ``<|im_start|>``.

        Each message becomes ``<|im_start|>{role}\n{content}<|im_end|>\n``; with
        ``add_generation_prompt`` the assistant's header ``<|im_start|>assistant\n`` follows,
        for the model to continue::

            <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n

        Only the two chat tokens come from the format: the text between two chat tokens is
        encoded in one :meth:`encode` call, so content that spells a chat token (a user
        typing ``"<|im_end|>"``) gives its bytes, never the id. ``decode`` of the result is
        the ChatML text above.

        Args:
            messages: N dicts, each exactly ``{"role": r, "content": text}`` with ``r`` in
                :data:`CHAT_ROLES`.
            add_generation_prompt: end with the assistant's header.

        Returns:
            list of T ids.

        Raises:
            ValueError: this tokenizer has no chat tokens, a message lacks a key or has an
                unknown one, or a role is not in :data:`CHAT_ROLES`; the message names
                which message.
            TypeError: ``messages`` is not a list of dicts, or a content is not a ``str``.
        """
        self._require_chat("encode_chat")
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
            raise TypeError(
                "messages must be a list of {'role': ..., 'content': ...} dicts; got "
                f"{type(messages).__name__}"
            )
        start, end = self._chat_ids["<|im_start|>"], self._chat_ids["<|im_end|>"]
        newline = self.encode("\n")
        ids: list[int] = []
        for index, message in enumerate(messages):
            role, content = _check_message(index, message)
            ids += [start, *self.encode(f"{role}\n{content}"), end, *newline]
        if add_generation_prompt:
            ids += [start, *self.encode("assistant\n")]
        return ids

    def encode(self, text: str) -> list[int]:
        """Encode ``text`` to ids; never yields a control id.

        Args:
            text: any ``str`` without lone surrogates.

        Returns:
            list of T ids, each in ``[NUM_CONTROL, vocab_size)``.
        """
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode each of N texts; equal to ``[self.encode(t) for t in texts]``.

        Returns:
            list of N lists of ids.
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings; use encode for one")
        return [self.encode(text) for text in texts]

    def decode(self, ids: Iterable[int], skip_control: bool = False) -> str:
        """Turn ids back into text.

        Control and chat ids are rendered as their names (``"[USER]"``, ``"<|im_end|>"``),
        or dropped when ``skip_control`` is true: the result is then the text alone, with no
        markup of either kind. The bytes between two such ids are decoded as UTF-8 with
        ``errors="replace"``: output of :meth:`encode` round-trips exactly, and a sequence that
        cuts a multi-byte character gives U+FFFD instead of failing.

        Args:
            ids: T ids, as a sequence of ints or a 1-D integer tensor / array.
            skip_control: drop control and chat ids instead of rendering their names.

        Raises:
            ValueError: an id is outside ``[0, vocab_size)``; the message names it.
        """
        # Tensors and arrays iterate as 0-d objects; one tolist() call gives plain ints.
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        pieces = self._pieces
        vocab_size = len(pieces)
        first_chat = vocab_size - len(self._chat_tokens)
        parts: list[str] = []
        run: list[bytes] = []
        for token_id in ids:
            if not 0 <= token_id < vocab_size:
                raise ValueError(
                    f"cannot decode id {token_id!r}: outside the vocabulary [0, {vocab_size})"
                )
            piece = pieces[token_id]
            if piece is not None:
                run.append(piece)
                continue
            # A control or chat id ends a run of bytes: decode what came before it on its own.
            if run:
                parts.append(b"".join(run).decode("utf-8", errors="replace"))
                run = []
            if not skip_control:
                parts.append(
                    CONTROL_TOKENS[token_id]
                    if token_id < NUM_CONTROL
                    else self._chat_tokens[token_id - first_chat]
                )
        if run:
            parts.append(b"".join(run).decode("utf-8", errors="replace"))
        return "".join(parts)

    def token_bytes(self, token_id: int) -> bytes | None:
        """The bytes id ``token_id`` stands for, or ``None`` for a control or chat id.

        Special ids stand for no text, so they count zero bytes in bits per byte.

        Raises:
            ValueError: ``token_id`` is outside ``[0, vocab_size)``.
        """
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"id {token_id!r} is outside the vocabulary [0, {self.vocab_size})")
        return self._pieces[token_id]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this tokenizer as one JSON file, atomically.

        The JSON goes to a temporary file in the destination directory, which is then renamed
        over the destination (``os.replace``): a reader never sees a half-written file and a
        crash leaves the previous file, if any, in place.

        Args:
            path: a file path, or an existing directory (the file is then
                ``path / "tokenizer.json"``).

        Returns:
            the path of the written file.
        """
        target = Path(path)
        if target.is_dir():
            target = target / TOKENIZER_FILENAME
        payload = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "kind": self.kind,
            "control_tokens": list(CONTROL_TOKENS),
            "chat_tokens": list(self._chat_tokens),
            "vocab_size": self.vocab_size,
            **self._payload(),
        }
        return write_text_atomic(target, json.dumps(payload, ensure_ascii=False))

    def _payload(self) -> dict[str, Any]:
        """Kind-specific fields written by :meth:`save` next to the common ones."""
        raise NotImplementedError

    @classmethod
    def _from_payload(cls, payload: dict[str, Any], source: Path, chat: bool) -> BaseTokenizer:
        """Rebuild a tokenizer from a parsed ``tokenizer.json``; errors name ``source``.

        ``chat``: whether the file has the chat tokens (checked by :func:`load_tokenizer`).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class ByteTokenizer(BaseTokenizer):
    """Control ids 0..8, then one id per byte: byte ``b`` has id ``b + 9``, then the chat ids
    265..268 (vocabulary 269).

    Args:
        chat: reserve the chat tokens; false only rebuilds a version-1 file (vocabulary 265).
    """

    kind = "byte"

    def __init__(self, *, chat: bool = True) -> None:
        self._set_pieces([bytes([b]) for b in range(256)], chat)

    def encode(self, text: str) -> list[int]:
        """Encode ``text`` as its UTF-8 bytes, each shifted by ``NUM_CONTROL``.

        Returns:
            list of T ids in ``[9, 265)``, T = number of UTF-8 bytes of ``text``.

        Raises:
            ValueError: ``text`` contains a lone surrogate (no UTF-8 form).
        """
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise _unencodable_text_error(text) from None
        return [b + NUM_CONTROL for b in data]

    def _payload(self) -> dict[str, Any]:
        return {}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any], source: Path, chat: bool) -> ByteTokenizer:
        return cls(chat=chat)


class BPETokenizer(BaseTokenizer):
    """Byte-level BPE (HF ``tokenizers``) with ids shifted by 9 behind the control ids, and
    the chat ids after the last HF id.

    Build one with :meth:`train` or :func:`load_tokenizer`; the constructor wraps an
    already trained HF ``tokenizers.Tokenizer`` and checks that it is one this class can use.
    """

    kind = "bpe"

    def __init__(self, hf_tokenizer: Tokenizer, *, chat: bool = True) -> None:
        """Wrap a trained HF byte-level BPE tokenizer.

        Args:
            hf_tokenizer: the trained HF tokenizer; with n ids, ours are ``9 .. 9+n-1``.
            chat: reserve the chat tokens as ids ``9+n .. 9+n+3``; false only rebuilds a
                version-1 file.

        Raises:
            ValueError: the HF tokenizer has added/special tokens (they would match literal
                text), a normaliser (it would break the round trip), non-contiguous ids, a
                vocabulary entry outside the byte-level alphabet, or lacks one of the 256 bytes.
        """
        self._hf = hf_tokenizer
        self._set_pieces(hf_id_bytes(hf_tokenizer), chat)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int = 4096,
        min_frequency: int = 2,
        show_progress: bool = False,
    ) -> BPETokenizer:
        """Train a byte-level BPE on ``texts``.

        Words are split with the GPT-2 pre-tokenisation regex (no prefix space added); merges
        never cross those boundaries. Training uses all cores; many moderate texts (documents
        or lines) parallelise better than one huge string.

        Args:
            texts: the training corpus; a single ``str`` counts as one document.
            vocab_size: total ids, control and chat ids included; at least
                :data:`MIN_VOCAB_SIZE` (9 control ids + 256 bytes + 4 chat ids = 269). The HF
                BPE gets ``vocab_size - 13`` ids. A small corpus may yield fewer merges, hence
                a smaller vocabulary.
            min_frequency: a pair must occur at least this often to be merged (>= 1).
            show_progress: let HF print its progress bars.
        """
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < MIN_VOCAB_SIZE:
            raise ValueError(
                f"vocab_size must be >= {MIN_VOCAB_SIZE} ({NUM_CONTROL} control ids + 256 bytes "
                f"+ {NUM_CHAT} chat ids), got {vocab_size}"
            )
        if isinstance(min_frequency, bool) or not isinstance(min_frequency, int):
            raise TypeError(f"min_frequency must be an int, got {type(min_frequency).__name__}")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        # Iterating a bare string would train on its characters one by one.
        if isinstance(texts, str):
            texts = [texts]

        hf = Tokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - NUM_CONTROL - NUM_CHAT,
            min_frequency=min_frequency,
            show_progress=show_progress,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
        )
        hf.train_from_iterator(texts, trainer=trainer)
        return cls(hf)

    def encode(self, text: str) -> list[int]:
        """Encode ``text`` with the byte-level BPE.

        Returns:
            list of T ids in ``[9, vocab_size - len(chat_tokens))``.

        Raises:
            ValueError: ``text`` contains a lone surrogate (no UTF-8 form).
            TypeError: ``text`` is not a ``str``.
        """
        try:
            ids = self._hf.encode(text, add_special_tokens=False).ids
        except TypeError:
            raise self._bad_input(text) from None
        return [i + NUM_CONTROL for i in ids]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode N texts on HF's parallel batch path; equal to ``[encode(t) for t in texts]``.

        Returns:
            list of N lists of ids.
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings; use encode for one")
        texts = list(texts)
        # encode_batch_fast skips offset tracking we never read; older releases lack it.
        batch = getattr(self._hf, "encode_batch_fast", self._hf.encode_batch)
        try:
            encodings = batch(texts, add_special_tokens=False)
        except TypeError:
            raise next(
                (self._bad_input(t) for t in texts if not _is_utf8_text(t)),
                TypeError("encode_batch expects a sequence of strings"),
            ) from None
        return [[i + NUM_CONTROL for i in enc.ids] for enc in encodings]

    @property
    def hf_tokenizer(self) -> Tokenizer:
        """The wrapped HF ``tokenizers.Tokenizer`` (its ids are ours minus ``NUM_CONTROL``)."""
        return self._hf

    @staticmethod
    def _bad_input(text: object) -> Exception:
        if isinstance(text, str):
            return _unencodable_text_error(text)
        return TypeError(f"expected str, got {type(text).__name__}")

    def _payload(self) -> dict[str, Any]:
        return {"hf_tokenizer": json.loads(self._hf.to_str())}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any], source: Path, chat: bool) -> BPETokenizer:
        hf_json = payload.get("hf_tokenizer")
        if not isinstance(hf_json, dict):
            raise ValueError(f"{source}: bpe tokenizer has no 'hf_tokenizer' object")
        try:
            hf = Tokenizer.from_str(json.dumps(hf_json))
        except Exception as exc:
            raise ValueError(
                f"{source}: 'hf_tokenizer' is not a valid HF tokenizer: {exc}"
            ) from exc
        try:
            return cls(hf, chat=chat)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc


def _check_message(index: int, message: object) -> tuple[str, str]:
    """``(role, content)`` of ``messages[index]``, checked; errors name the message."""
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise TypeError(
            f"{where} must be a dict {{'role': ..., 'content': ...}}; got {type(message).__name__}"
        )
    for key in ("role", "content"):
        if key not in message:
            raise ValueError(
                f"{where} has no {key!r}; a message is {{'role': ..., 'content': ...}}"
            )
    unknown = sorted(map(str, set(message) - {"role", "content"}))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; allowed: 'role', 'content'")
    role, content = message["role"], message["content"]
    if role not in CHAT_ROLES:
        raise ValueError(f"{where}: unknown role {role!r}; allowed: {', '.join(CHAT_ROLES)}")
    if not isinstance(content, str):
        raise TypeError(f"{where}: content must be a str; got {type(content).__name__}")
    return role, content


def _is_utf8_text(text: object) -> bool:
    """True for a ``str`` that has a UTF-8 form."""
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_KINDS: dict[str, type[BaseTokenizer]] = {
    ByteTokenizer.kind: ByteTokenizer,
    BPETokenizer.kind: BPETokenizer,
}


def load_tokenizer(path: str | os.PathLike[str]) -> ByteTokenizer | BPETokenizer:
    """Read a tokenizer written by :meth:`BaseTokenizer.save`.

    Args:
        path: the JSON file, or a directory holding ``tokenizer.json`` (a checkpoint).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a valid tokenizer file; the message names the path and
            what is wrong (bad JSON, unknown kind, different control or chat tokens, ...).

    A version-1 file (written before the chat tokens existed) gives a tokenizer with
    ``has_chat`` false and the vocabulary size it was saved with.
    """
    source = Path(path)
    if source.is_dir():
        source = source / TOKENIZER_FILENAME
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"tokenizer file not found: {source}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not a tokenizer file (not UTF-8 text: {exc})") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: not valid JSON ({exc}); the file may be truncated") from None
    if not isinstance(payload, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(payload).__name__}")
    if payload.get("format") != _FORMAT:
        raise ValueError(
            f"{source}: not an assoclm tokenizer file ('format' is {payload.get('format')!r}, "
            f"expected {_FORMAT!r})"
        )
    version = payload.get("version")
    if isinstance(version, bool) or version not in _READABLE_VERSIONS:
        readable = " and ".join(map(str, _READABLE_VERSIONS))
        raise ValueError(
            f"{source}: unsupported tokenizer file version {version!r} "
            f"(this assoclm reads versions {readable})"
        )
    kind = payload.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(
            f"{source}: unknown tokenizer kind {kind!r}; expected one of {list(_KINDS)}"
        )
    if payload.get("control_tokens") != list(CONTROL_TOKENS):
        raise ValueError(
            f"{source}: control tokens {payload.get('control_tokens')!r} differ from this "
            f"assoclm's {list(CONTROL_TOKENS)}; ids would be misread"
        )
    chat_tokens = payload.get("chat_tokens") if version >= 2 else []
    # [] is a version-1 tokenizer saved again: it keeps its ids, hence no chat tokens.
    if chat_tokens not in ([], list(CHAT_TOKENS)):
        raise ValueError(
            f"{source}: chat tokens {chat_tokens!r} differ from this assoclm's "
            f"{list(CHAT_TOKENS)}; ids would be misread"
        )
    tokenizer = _KINDS[kind]._from_payload(payload, source, chat=bool(chat_tokens))
    if payload.get("vocab_size") != tokenizer.vocab_size:
        raise ValueError(
            f"{source}: file says vocab_size {payload.get('vocab_size')!r} but the tokenizer "
            f"it holds has {tokenizer.vocab_size}"
        )
    return tokenizer  # type: ignore[return-value]
