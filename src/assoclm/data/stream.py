"""Token batches for training with carried state (truncated BPTT) and for held-out loss.

``LaneStream`` keeps ``batch_size`` lanes. Each lane reads one document from its start, in
order, ``unroll_len`` tokens per step, so that a recurrent model can carry the lane's state
from one step to the next. When a lane's document runs out it takes the next document from a
shared, seeded order (reshuffled every epoch) and flags ``reset`` for that lane: the caller
zeroes that lane's state before the step. A row never holds tokens of two documents, so state
never leaks from one document into another.

Timeline of one lane with ``unroll_len=4`` and a 7-token document ``a b c d e f g``::

    step   inputs        targets       loss_mask   reset
    t      a b c d       b c d e       1 1 1 1     True    (new document)
    t+1    e f . .       f g . .       1 1 0 0     False   (remainder < L+1: padded, ends)
    t+2    <next document from the shared order>   True

``eval_batches`` is the stateless counterpart for evaluation: fixed windows that cover every
target token of every document exactly once.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["EvalBatch", "LaneBatch", "LaneStream", "eval_batches"]

TokenDoc = np.ndarray | Sequence[int]

_STATE_FORMAT = "assoclm.LaneStream/1"


@dataclass(frozen=True)
class LaneBatch:
    """One step of a ``LaneStream``.

    Attributes:
        inputs: token ids, [B, L] int64; ``pad_id`` where ``loss_mask`` is 0.
        targets: the next token of each input within the same document, [B, L] int64.
        reset: [B] bool; True where the lane starts a new document at this step, so the
            caller must zero that lane's state before running the step.
        loss_mask: [B, L] float32 loss weights: 0 on padding; 1 on the targets of token
            documents; a labelled document's own weights (e.g. 0.05 on duplex [LISTEN]).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    reset: torch.Tensor
    loss_mask: torch.Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LaneBatch:
        """The same batch on ``device``."""
        return LaneBatch(
            inputs=self.inputs.to(device, non_blocking=non_blocking),
            targets=self.targets.to(device, non_blocking=non_blocking),
            reset=self.reset.to(device, non_blocking=non_blocking),
            loss_mask=self.loss_mask.to(device, non_blocking=non_blocking),
        )


class EvalBatch(NamedTuple):
    """Windows for held-out loss: ``inputs``, ``targets`` [b, L] int64 and ``loss_mask``
    [b, L] float32, with b <= batch_size (the last batch may be smaller)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    loss_mask: torch.Tensor


@dataclass(frozen=True)
class Pairs:
    """A document as aligned (input, target, weight) positions."""

    inputs: np.ndarray
    targets: np.ndarray
    weights: np.ndarray | None  # None: every position has weight 1

    @property
    def size(self) -> int:
        return int(self.inputs.size)


def as_pairs(doc: TokenDoc | Any, index: int) -> Pairs:
    """Token documents train on next-token pairs; labelled documents (anything with
    ``input_ids``, ``target_ids`` and ``weights``, e.g. a duplex stream) bring their own."""
    if all(hasattr(doc, a) for a in ("input_ids", "target_ids", "weights")):
        inputs = _as_tokens(doc.input_ids, index)
        targets = _as_tokens(doc.target_ids, index)
        weights = np.asarray(doc.weights, dtype=np.float32)
        if not inputs.shape == targets.shape == weights.shape:
            raise ValueError(
                f"document {index}: input_ids, target_ids and weights must have the same "
                f"length; got {inputs.size}, {targets.size}, {weights.size}"
            )
        if weights.size and (not np.isfinite(weights).all() or weights.min() < 0):
            raise ValueError(f"document {index}: weights must be finite and >= 0")
        return Pairs(inputs, targets, weights)
    tokens = _as_tokens(doc, index)
    return Pairs(tokens[:-1], tokens[1:], None)


def _as_tokens(doc: TokenDoc, index: int) -> np.ndarray:
    arr = np.asarray(doc)
    if arr.ndim != 1:
        raise ValueError(f"document {index} must be 1-D token ids, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"document {index} must hold integer token ids, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class LaneStream:
    """Stateful truncated-BPTT batches: ``batch_size`` lanes, each reading whole documents.

    Args:
        docs: token-id documents, each a 1-D integer array or list (trained on next-token
            pairs; documents shorter than 2 tokens have none and are skipped), or labelled
            documents: objects with aligned ``input_ids``, ``target_ids`` and ``weights``
            arrays (e.g. a duplex stream), whose weights become the ``loss_mask``.
        batch_size: number of lanes B, >= 1.
        unroll_len: tokens per lane per step L, >= 1.
        seed: seeds the document order.
        shuffle: reshuffle the order every epoch; False reads documents in index order.
        pad_id: id written into padded positions (masked out of the loss).

    The shared order is a permutation of the usable documents; lanes take documents from it
    in lane order within a step, and an epoch ends when the order is used up. With fewer
    documents than lanes, two lanes may read the same document at the same time.

    Iterating yields ``next_batch()`` forever. ``state_dict()``/``load_state_dict()`` resume
    exactly: the batches after a restore equal those of the uninterrupted stream.
    """

    def __init__(
        self,
        docs: Sequence[TokenDoc],
        batch_size: int,
        unroll_len: int,
        seed: int = 0,
        shuffle: bool = True,
        pad_id: int = 0,
    ) -> None:
        _check_positive("batch_size", batch_size)
        _check_positive("unroll_len", unroll_len)
        self.batch_size = int(batch_size)
        self.unroll_len = int(unroll_len)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.pad_id = int(pad_id)
        self._docs = [as_pairs(doc, i) for i, doc in enumerate(docs)]
        self._usable = np.array(
            [i for i, doc in enumerate(self._docs) if doc.size >= 1], dtype=np.int64
        )
        if self._usable.size == 0:
            raise ValueError(
                f"no usable document: none of the {len(self._docs)} documents has an "
                "(input, target) pair to train on (token documents need 2 tokens)"
            )
        self._digest = _lengths_digest(self._docs)
        self._rng = np.random.default_rng(self.seed)
        self._epoch = 0
        self._order = self._new_order()
        self._cursor = 0
        # -1: the lane has no document and takes a new one (with reset) at the next step.
        self._lane_doc = [-1] * self.batch_size
        self._lane_pos = [0] * self.batch_size
        self._tokens_seen = 0
        self._steps = 0

    @property
    def tokens_seen(self) -> int:
        """Real (unmasked) target tokens delivered so far."""
        return self._tokens_seen

    @property
    def epoch(self) -> int:
        """How many times the document order has been used up (and reshuffled)."""
        return self._epoch

    @property
    def steps(self) -> int:
        """Batches delivered so far."""
        return self._steps

    @property
    def num_usable_docs(self) -> int:
        """Documents with at least 2 tokens."""
        return int(self._usable.size)

    def __iter__(self) -> Iterator[LaneBatch]:
        return self

    def __next__(self) -> LaneBatch:
        return self.next_batch()

    def _new_order(self) -> np.ndarray:
        if self.shuffle:
            return self._rng.permutation(self._usable)
        return self._usable.copy()

    def _take_next_doc(self) -> int:
        if self._cursor == self._order.size:
            self._epoch += 1
            self._order = self._new_order()
            self._cursor = 0
        doc = int(self._order[self._cursor])
        self._cursor += 1
        return doc

    def next_batch(self) -> LaneBatch:
        """The next step for all lanes: inputs/targets/loss_mask [B, L], reset [B]."""
        B, L = self.batch_size, self.unroll_len
        inputs = np.full((B, L), self.pad_id, dtype=np.int64)
        targets = np.full((B, L), self.pad_id, dtype=np.int64)
        loss_mask = np.zeros((B, L), dtype=np.float32)
        reset = np.zeros(B, dtype=bool)
        for b in range(B):
            if self._lane_doc[b] < 0:
                self._lane_doc[b] = self._take_next_doc()
                self._lane_pos[b] = 0
                reset[b] = True
            doc = self._docs[self._lane_doc[b]]
            pos = self._lane_pos[b]
            # At least 1: a lane only holds a document while it has a target left.
            n = min(L, doc.size - pos)
            inputs[b, :n] = doc.inputs[pos : pos + n]
            targets[b, :n] = doc.targets[pos : pos + n]
            loss_mask[b, :n] = 1.0 if doc.weights is None else doc.weights[pos : pos + n]
            self._tokens_seen += n
            if pos + n == doc.size:
                # Document done (this row may be padded): the next step starts a new one.
                self._lane_doc[b] = -1
                self._lane_pos[b] = 0
            else:
                self._lane_pos[b] = pos + n
        self._steps += 1
        return LaneBatch(
            inputs=torch.from_numpy(inputs),
            targets=torch.from_numpy(targets),
            reset=torch.from_numpy(reset),
            loss_mask=torch.from_numpy(loss_mask),
        )

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; plain JSON types only."""
        return {
            "format": _STATE_FORMAT,
            **self._settings(),
            "epoch": self._epoch,
            "order": [int(i) for i in self._order],
            "cursor": self._cursor,
            "lane_doc": list(self._lane_doc),
            "lane_pos": list(self._lane_pos),
            "tokens_seen": self._tokens_seen,
            "steps": self._steps,
            "rng": _jsonable(self._rng.bit_generator.state),
        }

    def _settings(self) -> dict[str, Any]:
        """What a saved state must agree on with the stream it is loaded into."""
        return {
            "batch_size": self.batch_size,
            "unroll_len": self.unroll_len,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "pad_id": self.pad_id,
            "num_docs": len(self._docs),
            "doc_lengths_sha256": self._digest,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict()`` taken from a stream over the same documents and
        settings; raises ValueError naming the first setting that differs."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(
                f"not a LaneStream state (format {state.get('format')!r}, "
                f"expected {_STATE_FORMAT!r})"
            )
        mine = self._settings()
        for key, value in mine.items():
            if state.get(key) != value:
                raise ValueError(
                    f"LaneStream state has {key}={state.get(key)!r} but this stream has "
                    f"{key}={value!r}; restore into a stream built the same way"
                )
        lane_doc = [int(d) for d in state["lane_doc"]]
        lane_pos = [int(p) for p in state["lane_pos"]]
        order = np.asarray(state["order"], dtype=np.int64)
        usable = set(self._usable.tolist())
        if len(lane_doc) != self.batch_size or len(lane_pos) != self.batch_size:
            raise ValueError("LaneStream state: lane_doc/lane_pos do not have batch_size entries")
        if sorted(order.tolist()) != sorted(usable):
            raise ValueError("LaneStream state: order is not a permutation of the usable documents")
        for d, p in zip(lane_doc, lane_pos):
            if d >= 0 and (d not in usable or not 0 <= p < self._docs[d].size):
                raise ValueError(f"LaneStream state: lane at document {d}, position {p} is invalid")
        cursor = int(state["cursor"])
        if not 0 <= cursor <= order.size:
            raise ValueError(f"LaneStream state: cursor {cursor} outside [0, {order.size}]")
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self._rng = rng
        self._epoch = int(state["epoch"])
        self._order = order
        self._cursor = cursor
        self._lane_doc = lane_doc
        self._lane_pos = lane_pos
        self._tokens_seen = int(state["tokens_seen"])
        self._steps = int(state["steps"])


def _lengths_digest(docs: list[Pairs]) -> str:
    # Cheap fingerprint that catches restoring into a different corpus or tokenization.
    # (Counted in tokens, pairs + 1, as before labelled documents existed.)
    lengths = np.array([doc.size + 1 for doc in docs], dtype="<i8")
    return hashlib.sha256(lengths.tobytes()).hexdigest()


def _jsonable(value: Any) -> Any:
    """numpy's bit-generator state with numpy scalars turned into plain Python values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def eval_batches(
    docs: Sequence[TokenDoc], batch_size: int, seq_len: int, pad_id: int = 0
) -> Iterator[EvalBatch]:
    """Fixed windows over every document for held-out loss; no state is carried.

    Document d is cut into windows starting at 0, L, 2L, ...: inputs ``d[s : s+L]``,
    targets ``d[s+1 : s+L+1]``, the last window padded with ``pad_id`` and masked. Every
    target token (every token but the first) of every document is covered exactly once;
    documents shorter than 2 tokens have none. Windows are packed ``batch_size`` per batch,
    in document order.

    Args:
        docs: token-id documents, 1-D integer arrays or lists.
        batch_size: windows per batch, >= 1.
        seq_len: window length L, >= 1.
        pad_id: id written into padded positions.

    Yields:
        ``EvalBatch(inputs, targets, loss_mask)``, each [b, L] with b <= batch_size.

    Raises:
        ValueError: bad sizes or no document with at least 2 tokens (raised at the call).
    """
    _check_positive("batch_size", batch_size)
    _check_positive("seq_len", seq_len)
    arrays = [_as_tokens(doc, i) for i, doc in enumerate(docs)]
    if not any(arr.size >= 2 for arr in arrays):
        raise ValueError(
            f"no document with at least 2 tokens among {len(arrays)}: nothing to evaluate"
        )
    return _eval_windows(arrays, int(batch_size), int(seq_len), int(pad_id))


def _eval_windows(
    docs: list[np.ndarray], batch_size: int, seq_len: int, pad_id: int
) -> Iterator[EvalBatch]:
    windows = ((doc, start) for doc in docs for start in range(0, doc.size - 1, seq_len))
    while chunk := list(itertools.islice(windows, batch_size)):
        inputs = np.full((len(chunk), seq_len), pad_id, dtype=np.int64)
        targets = np.full((len(chunk), seq_len), pad_id, dtype=np.int64)
        loss_mask = np.zeros((len(chunk), seq_len), dtype=np.float32)
        for row, (doc, start) in enumerate(chunk):
            n = min(seq_len, doc.size - 1 - start)
            inputs[row, :n] = doc[start : start + n]
            targets[row, :n] = doc[start + 1 : start + 1 + n]
            loss_mask[row, :n] = 1.0
        yield EvalBatch(
            inputs=torch.from_numpy(inputs),
            targets=torch.from_numpy(targets),
            loss_mask=torch.from_numpy(loss_mask),
        )
