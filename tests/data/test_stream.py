"""LaneStream (stateful truncated-BPTT batches) and eval_batches (held-out windows)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from assoclm.data.stream import LaneBatch, LaneStream, eval_batches

# Token = doc * BASE + position: every token names its document and position, so a test
# can tell from the batches alone which document a lane reads and where.
BASE = 10_000
PAD = -1


def make_docs(lengths: list[int]) -> list[np.ndarray]:
    return [i * BASE + np.arange(n, dtype=np.int64) for i, n in enumerate(lengths)]


def doc_of(token: int) -> int:
    return token // BASE


def pos_of(token: int) -> int:
    return token % BASE


def run(stream: LaneStream, steps: int) -> list[LaneBatch]:
    return [stream.next_batch() for _ in range(steps)]


def check_and_reconstruct(docs, batches, batch_size, unroll_len):
    """Check every lane invariant step by step; return the documents each lane read, in
    start order, as (doc index, reconstructed tokens, finished) per lane."""
    lanes: list[list[list]] = [[] for _ in range(batch_size)]
    done = [True] * batch_size
    for t, batch in enumerate(batches):
        assert batch.inputs.shape == batch.targets.shape == batch.loss_mask.shape
        assert batch.inputs.shape == (batch_size, unroll_len)
        assert batch.reset.shape == (batch_size,) and batch.reset.dtype == torch.bool
        assert batch.inputs.dtype == batch.targets.dtype == torch.int64
        assert batch.loss_mask.dtype == torch.float32
        for b in range(batch_size):
            mask = batch.loss_mask[b].numpy()
            n = int(mask.sum())
            where = f"step {t} lane {b}"
            assert n >= 1, f"{where}: empty row"
            assert (mask[:n] == 1).all() and (mask[n:] == 0).all(), f"{where}: mask {mask}"
            x = batch.inputs[b].tolist()
            y = batch.targets[b].tolist()
            assert x[n:] == [PAD] * (unroll_len - n), f"{where}: unmasked padding {x[n:]}"
            assert y[n:] == [PAD] * (unroll_len - n), f"{where}: unmasked padding {y[n:]}"
            docs_in_row = {doc_of(tok) for tok in x[:n] + y[:n]}
            assert len(docs_in_row) == 1, f"{where}: row mixes documents {docs_in_row}"
            assert y[:n] == [tok + 1 for tok in x[:n]], f"{where}: targets are not inputs + 1"
            d = docs_in_row.pop()
            starts_doc = pos_of(x[0]) == 0
            assert bool(batch.reset[b]) == starts_doc, (
                f"{where}: reset={bool(batch.reset[b])} but first input is position "
                f"{pos_of(x[0])} of document {d}"
            )
            if starts_doc:
                assert done[b], f"{where}: new document before the previous one ended"
                lanes[b].append([d, [x[0]]])
            else:
                assert not done[b] and lanes[b][-1][0] == d, f"{where}: lane jumped documents"
                assert lanes[b][-1][1][-1] == x[0], f"{where}: lane skipped tokens"
            lanes[b][-1][1].extend(y[:n])
            done[b] = y[n - 1] == docs[d][-1]
            assert n == unroll_len or done[b], f"{where}: padded row before the document end"
    result = []
    for b, lane in enumerate(lanes):
        # Every document but a lane's last one has ended; the last one may be cut off.
        finished = [k < len(lane) - 1 or done[b] for k in range(len(lane))]
        result.append([(d, np.array(toks), f) for (d, toks), f in zip(lane, finished)])
    return result


def started_order(batches) -> list[int]:
    """Documents in the order lanes took them from the shared order: by step, then lane."""
    return [
        doc_of(int(batch.inputs[b, 0]))
        for batch in batches
        for b in range(batch.reset.shape[0])
        if batch.reset[b]
    ]


CASES = [
    pytest.param(1, 1, [5, 2, 3], id="B1-L1"),
    pytest.param(3, 7, [0, 1, 2, 7, 8, 9, 63, 100, 15, 1], id="B3-L7-short-docs"),
    pytest.param(4, 5, [6, 11, 16, 40, 2, 3, 4, 5], id="B4-L5-exact-fits"),
    pytest.param(8, 4, [9, 30, 3], id="B8-L4-more-lanes-than-docs"),
    pytest.param(2, 64, [100, 63, 64, 65, 129], id="B2-L64"),
]


@pytest.mark.parametrize("shuffle", [True, False], ids=["shuffle", "in-order"])
@pytest.mark.parametrize(("batch_size", "unroll_len", "lengths"), CASES)
def test_lanes_read_whole_documents_in_order(batch_size, unroll_len, lengths, shuffle):
    docs = make_docs(lengths)
    stream = LaneStream(docs, batch_size, unroll_len, seed=5, shuffle=shuffle, pad_id=PAD)
    batches = run(stream, 120)
    lanes = check_and_reconstruct(docs, batches, batch_size, unroll_len)
    for b, lane in enumerate(lanes):
        for d, tokens, finished in lane:
            expected = docs[d] if finished else docs[d][: tokens.size]
            assert np.array_equal(tokens, expected), (
                f"lane {b}, document {d}: read {tokens.size} tokens that differ from the "
                f"document's first {expected.size}"
            )
    usable = sorted(i for i, n in enumerate(lengths) if n >= 2)
    order = started_order(batches)
    assert set(order) <= set(usable), f"documents shorter than 2 tokens were read: {order}"
    epochs = [order[i : i + len(usable)] for i in range(0, len(order), len(usable))]
    for e, epoch in enumerate(epochs[:-1]):
        assert sorted(epoch) == usable, f"epoch {e} is not a permutation: {epoch}"
        if not shuffle:
            assert epoch == usable, f"shuffle=False read epoch {e} out of order: {epoch}"
    assert stream.tokens_seen == sum(int(b.loss_mask.sum()) for b in batches)
    assert stream.steps == 120


def test_epochs_are_reshuffled_and_seeded():
    docs = make_docs([3] * 20)

    def epoch_orders(seed):
        order = started_order(run(LaneStream(docs, 2, 2, seed=seed, pad_id=PAD), 60))
        return order[:20], order[20:40], order[40:60]

    first, second, third = epoch_orders(0)
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != second and second != third, "epochs were not reshuffled"
    assert epoch_orders(0) == (first, second, third), "same seed gave another order"
    assert epoch_orders(1)[0] != first, "another seed gave the same order"


def test_tokens_seen_counts_every_target_once_per_epoch():
    lengths = [10, 2, 33, 7]
    stream = LaneStream(make_docs(lengths), 1, 4, shuffle=False, pad_id=PAD)
    # One lane, in order: each document takes ceil((n - 1) / 4) steps.
    steps = sum(-(-(n - 1) // 4) for n in lengths)
    run(stream, steps)
    assert stream.tokens_seen == sum(n - 1 for n in lengths)
    assert stream.epoch == 0
    stream.next_batch()
    assert stream.epoch == 1


def test_short_document_is_padded_then_reset_next_step():
    stream = LaneStream(make_docs([7, 3]), 1, 4, shuffle=False, pad_id=PAD)
    first, second, third = run(stream, 3)
    assert first.inputs.tolist() == [[0, 1, 2, 3]] and bool(first.reset[0])
    assert second.inputs.tolist() == [[4, 5, PAD, PAD]] and not bool(second.reset[0])
    assert second.targets.tolist() == [[5, 6, PAD, PAD]]
    assert second.loss_mask.tolist() == [[1.0, 1.0, 0.0, 0.0]]
    assert third.inputs.tolist() == [[BASE, BASE + 1, PAD, PAD]] and bool(third.reset[0])


def _equal_batches(a: list[LaneBatch], b: list[LaneBatch]) -> None:
    for t, (x, y) in enumerate(zip(a, b, strict=True)):
        for field in ("inputs", "targets", "reset", "loss_mask"):
            u, v = getattr(x, field), getattr(y, field)
            assert torch.equal(u, v), f"step {t} after resume: {field} differs\n{u}\nvs\n{v}"


@pytest.mark.parametrize(
    ("batch_size", "unroll_len", "shuffle", "save_at"),
    [
        pytest.param(1, 1, True, 0, id="B1-L1-fresh"),
        pytest.param(3, 7, True, 13, id="B3-L7-step13"),
        pytest.param(4, 5, False, 29, id="B4-L5-in-order-step29"),
        pytest.param(8, 3, True, 101, id="B8-L3-step101-later-epoch"),
    ],
)
def test_resume_through_json_matches_uninterrupted(batch_size, unroll_len, shuffle, save_at):
    docs = make_docs([0, 1, 2, 7, 8, 9, 63, 100, 15, 21, 3])
    kwargs = dict(seed=11, shuffle=shuffle, pad_id=PAD)
    original = LaneStream(docs, batch_size, unroll_len, **kwargs)
    run(original, save_at)
    state = json.loads(json.dumps(original.state_dict()))
    epoch, seen = original.epoch, original.tokens_seen
    expected = run(original, 250)

    # Restore into a stream that has already moved on, not only a fresh one.
    restored = LaneStream(docs, batch_size, unroll_len, **kwargs)
    run(restored, 7)
    restored.load_state_dict(state)
    assert (restored.epoch, restored.tokens_seen, restored.steps) == (epoch, seen, save_at)
    _equal_batches(run(restored, 250), expected)
    assert restored.tokens_seen == original.tokens_seen
    assert restored.epoch == original.epoch > epoch, "the check should cross an epoch boundary"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param(dict(batch_size=3), "batch_size", id="batch_size"),
        pytest.param(dict(unroll_len=6), "unroll_len", id="unroll_len"),
        pytest.param(dict(seed=1), "seed", id="seed"),
        pytest.param(dict(docs=make_docs([5, 6, 8])), "doc_lengths_sha256", id="doc-lengths"),
        pytest.param(dict(docs=make_docs([5, 6])), "num_docs", id="num-docs"),
    ],
)
def test_load_state_dict_rejects_another_setup(change, field):
    args = dict(docs=make_docs([5, 6, 7]), batch_size=2, unroll_len=4, seed=0)
    state = LaneStream(**args).state_dict()
    other = LaneStream(**{**args, **change})
    with pytest.raises(ValueError, match=f"state has {field}="):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="not a LaneStream state"):
        other.load_state_dict({"format": "something else"})


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
        (dict(unroll_len=0), "unroll_len must be an integer >= 1, got 0"),
        (dict(batch_size=2.0), "batch_size must be an integer >= 1, got 2.0"),
        (dict(docs=[[1], [], np.array([3])]), "no usable document: none of the 3 documents"),
        (dict(docs=[np.zeros((2, 3), dtype=np.int64)]), r"document 0 must be 1-D"),
        (dict(docs=[[1, 2], [0.5, 1.5]]), "document 1 must hold integer token ids"),
    ],
    ids=["batch0", "unroll0", "float-batch", "no-usable", "2d-doc", "float-doc"],
)
def test_constructor_validates(args, message):
    full = dict(docs=[[1, 2, 3]], batch_size=2, unroll_len=3) | args
    with pytest.raises(ValueError, match=message):
        LaneStream(**full)


def test_batches_iterate_and_move_to_device():
    stream = LaneStream([list(range(10))], 2, 3)
    batch = next(iter(stream)).to("cpu")
    assert isinstance(batch, LaneBatch) and batch.inputs.shape == (2, 3)


@pytest.mark.parametrize(
    ("batch_size", "seq_len"),
    [(1, 1), (3, 7), (4, 64), (16, 5)],
    ids=["B1-L1", "B3-L7", "B4-L64", "B16-L5"],
)
def test_eval_batches_cover_every_target_once(batch_size, seq_len):
    lengths = [0, 1, 2, 7, 8, 9, 63, 100, 15]
    docs = make_docs(lengths)
    batches = list(eval_batches(docs, batch_size, seq_len, pad_id=PAD))
    counts: Counter[int] = Counter()
    for i, (inputs, targets, mask) in enumerate(batches):
        rows = inputs.shape[0]
        assert inputs.shape == targets.shape == mask.shape == (rows, seq_len)
        assert rows == batch_size or i == len(batches) - 1, f"batch {i} has {rows} rows"
        valid = mask.bool()
        assert torch.equal(targets[valid], inputs[valid] + 1), f"batch {i}: targets not shifted"
        assert (inputs[~valid] == PAD).all() and (targets[~valid] == PAD).all()
        for row in range(rows):
            docs_in_row = {doc_of(t) for t in inputs[row][valid[row]].tolist()}
            assert len(docs_in_row) == 1, f"batch {i} row {row} mixes documents {docs_in_row}"
        counts.update(targets[valid].tolist())
    expected = Counter(int(t) for doc in docs for t in doc[1:])
    missing, extra = expected - counts, counts - expected
    assert not missing and not extra, (
        f"targets missing: {list(missing)[:5]}, repeated or foreign: {list(extra)[:5]}"
    )


def test_eval_batches_validate():
    with pytest.raises(ValueError, match="seq_len must be an integer >= 1"):
        eval_batches([[1, 2]], 1, 0)
    with pytest.raises(ValueError, match="no document with at least 2 tokens"):
        eval_batches([[1], []], 1, 4)


class Labelled:
    def __init__(self, inputs, targets, weights):
        self.input_ids, self.target_ids, self.weights = inputs, targets, weights


def test_labelled_documents_bring_their_own_targets_and_weights():
    a = Labelled([5, 6, 7, 8, 9], [3, 3, 4, 10, 11], [0.05, 0.05, 1.0, 1.0, 0.0])
    b = Labelled([20, 21], [22, 23], [1.0, 0.5])
    stream = LaneStream([a, b], batch_size=1, unroll_len=3, shuffle=False, pad_id=0)
    first, second, third = stream.next_batch(), stream.next_batch(), stream.next_batch()
    assert first.inputs.tolist() == [[5, 6, 7]] and first.targets.tolist() == [[3, 3, 4]]
    assert first.loss_mask.tolist() == [[pytest.approx(0.05), pytest.approx(0.05), 1.0]]
    assert bool(first.reset[0]) and not bool(second.reset[0])
    assert second.inputs.tolist() == [[8, 9, 0]] and second.targets.tolist() == [[10, 11, 0]]
    assert second.loss_mask.tolist() == [[1.0, 0.0, 0.0]]  # its own 0, then padding
    assert bool(third.reset[0]) and third.inputs.tolist() == [[20, 21, 0]]
    assert third.loss_mask.tolist() == [[1.0, 0.5, 0.0]]
    assert stream.tokens_seen == 7


def test_labelled_documents_are_validated():
    with pytest.raises(ValueError, match="same length"):
        LaneStream([Labelled([1, 2], [3], [1.0, 1.0])], batch_size=1, unroll_len=2)
    with pytest.raises(ValueError, match="finite and >= 0"):
        LaneStream([Labelled([1, 2], [3, 4], [1.0, -1.0])], batch_size=1, unroll_len=2)
