"""Synthetic recall tasks: MQAR, fact update, digit tasks, and the accuracy metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from assoclm.data.synthetic import (
    FACT_QUERY,
    IGNORE_INDEX,
    SyntheticTask,
    accuracy,
    copy_task,
    digit_task,
    fact_update,
    fact_update_seq_len,
    logits_accuracy,
    mqar,
    reverse_task,
    sort_task,
)

# ---------------------------------------------------------------------------------------------
# MQAR


MQAR_CASES = [
    pytest.param(dict(num_examples=300, seq_len=64, num_kv_pairs=8, vocab_size=8192), id="T64-D8"),
    # smallest legal vocabulary, odd, and the densest legal context (4D == T)
    pytest.param(
        dict(num_examples=300, seq_len=20, num_kv_pairs=5, vocab_size=21), id="T20-D5-V21"
    ),
    pytest.param(dict(num_examples=7, seq_len=100, num_kv_pairs=1, vocab_size=101), id="T100-D1"),
]


@pytest.mark.parametrize("random_non_queries", [False, True], ids=["zeros", "random"])
@pytest.mark.parametrize("kwargs", MQAR_CASES)
def test_mqar_invariants(kwargs, random_non_queries):
    task = mqar(**kwargs, random_non_queries=random_non_queries, seed=3)
    n, t, d, v = (kwargs[k] for k in ("num_examples", "seq_len", "num_kv_pairs", "vocab_size"))
    assert task.name == "mqar" and task.vocab_size == v and task.groups == {}
    assert task.inputs.shape == task.targets.shape == (n, t)
    assert task.inputs.dtype == task.targets.dtype == torch.int64
    x, y = task.inputs.numpy(), task.targets.numpy()
    assert x.min() >= 0 and x.max() < v, f"inputs outside [0, {v}): [{x.min()}, {x.max()}]"
    keys, values = x[:, 0 : 2 * d : 2], x[:, 1 : 2 * d : 2]
    assert keys.min() >= 1 and keys.max() < v // 2, f"keys in [{keys.min()}, {keys.max()}]"
    assert values.min() >= v // 2 and values.max() < v, f"values [{values.min()}, {values.max()}]"
    for i in range(n):
        assert len(set(keys[i])) == d, f"example {i}: repeated keys {keys[i]}"
        assert len(set(values[i])) == d, f"example {i}: repeated values {values[i]}"
        pos = np.flatnonzero(y[i] != IGNORE_INDEX)
        assert len(pos) == d, f"example {i}: {len(pos)} scored positions, expected {d}"
        assert (pos >= 2 * d).all() and ((pos - 2 * d) % 2 == 0).all(), f"example {i}: {pos}"
        pair = dict(zip(keys[i].tolist(), values[i].tolist()))
        queried = x[i, pos].tolist()
        assert sorted(queried) == sorted(pair), f"example {i}: queried {queried} vs {pair}"
        expected = [pair[k] for k in queried]
        assert y[i, pos].tolist() == expected, f"example {i}: targets {y[i, pos]} != {expected}"
        rest = np.ones(t, dtype=bool)
        rest[: 2 * d] = False
        rest[pos] = False
        if not random_non_queries:
            assert (x[i, rest] == 0).all(), f"example {i}: non-query tokens {x[i, rest]}"


def test_mqar_random_non_queries_fill_the_gaps():
    task = mqar(200, 256, 4, 8192, seed=0)
    x, y = task.inputs.numpy(), task.targets.numpy()
    rest = y[:, 8:] == IGNORE_INDEX
    filler = x[:, 8:][rest]
    # uniform over [0, 8192): zeros are rare and the tokens spread over the vocabulary
    assert (filler == 0).mean() < 0.01, f"{(filler == 0).mean():.3f} of the filler is 0"
    assert len(np.unique(filler)) > 4000, f"only {len(np.unique(filler))} distinct filler tokens"


def test_mqar_keys_and_values_are_uniform_at_every_context_position():
    # 9 keys in [1, 10) and 11 values in [10, 21), 5 pairs: every (position, token) pair has
    # probability 1/9 (keys) or 1/11 (values); a biased draw order would skew the counts.
    n = 4000
    x = mqar(n, 20, 5, 21, seed=4).inputs.numpy()
    for offset, low, size in [(0, 1, 9), (1, 10, 11)]:
        tokens = x[:, offset:10:2] - low
        counts = np.stack([np.bincount(tokens[:, j], minlength=size) for j in range(5)])
        expected = n / size
        worst = np.abs(counts - expected).max() / expected
        assert worst < 0.15, f"offset {offset}: counts {counts} vs {expected:.0f} each"


def test_mqar_seeds_reproduce_and_differ():
    a = mqar(50, 64, 8, 256, seed=11)
    b = mqar(50, 64, 8, 256, seed=11)
    c = mqar(50, 64, 8, 256, seed=12)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)
    assert not torch.equal(a.targets != IGNORE_INDEX, c.targets != IGNORE_INDEX)


def test_generators_leave_global_rng_alone():
    np.random.seed(5)
    torch.manual_seed(5)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    mqar(10, 64, 8, 256, seed=0)
    fact_update(10, 4, 2, 32, num_filler=3, seed=0)
    sort_task(10, 5, seed=0)
    assert (np.random.get_state()[1] == np_state).all()
    assert torch.equal(torch.get_rng_state(), torch_state)


def query_slots(task: SyntheticTask, num_kv_pairs: int) -> np.ndarray:
    """[N, D] query slot index of the j-th context key (0-based)."""
    x, y = task.inputs.numpy(), task.targets.numpy()
    slots = np.empty((len(x), num_kv_pairs), dtype=np.int64)
    for i in range(len(x)):
        pos = np.flatnonzero(y[i] != IGNORE_INDEX)
        where = {k: (p - 2 * num_kv_pairs) // 2 for k, p in zip(x[i, pos].tolist(), pos)}
        slots[i] = [where[k] for k in x[i, 0 : 2 * num_kv_pairs : 2].tolist()]
    return slots


def test_mqar_gaps_follow_the_power_law():
    n, t, d = 3000, 256, 4
    space = (t - 2 * d) // 2
    uniform_mean = (space - 1) / 2
    skewed = query_slots(mqar(n, t, d, 8192, power_a=0.01, seed=0), d)
    flat = query_slots(mqar(n, t, d, 8192, power_a=1.0, seed=0), d)
    # p(i) ∝ i^-0.99 over i = 1..124: the first draw has mean ≈ 22 slots, uniform has 61.5
    assert skewed.mean() < 0.5 * uniform_mean, f"mean slot {skewed.mean():.1f}"
    assert abs(flat.mean() - uniform_mean) < 0.05 * uniform_mean, f"uniform {flat.mean():.1f}"
    # the most likely slot is the first one, and small slots dominate
    counts = np.bincount(skewed.ravel(), minlength=space)
    assert counts.argmax() == 0 and counts[:10].sum() > counts[-10:].sum() * 5, counts
    # slots are drawn in order with the keys, so early keys are queried earlier (as Zoology)
    by_key = skewed.mean(axis=0)
    assert by_key[0] < by_key[-1] - 2, f"mean slot by key index {by_key}"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(seq_len=63), "seq_len must be even"),
        (dict(vocab_size=64), "vocab_size must be > seq_len"),
        (dict(num_kv_pairs=17), "num_kv_pairs must be <= seq_len / 4"),
        (dict(num_kv_pairs=0), "num_kv_pairs must be an int >= 1"),
        (dict(num_examples=0), "num_examples must be an int >= 1"),
        (dict(power_a=0.0), "power_a must be a finite number > 0"),
        (dict(power_a=float("nan")), "power_a"),
    ],
    ids=["odd-T", "V<=T", "4D>T", "D0", "N0", "a0", "a-nan"],
)
def test_mqar_rejects_bad_arguments(kwargs, match):
    args = dict(num_examples=4, seq_len=64, num_kv_pairs=8, vocab_size=128) | kwargs
    with pytest.raises(ValueError, match=match):
        mqar(**args)


# ---------------------------------------------------------------------------------------------
# Fact update


@pytest.mark.parametrize(
    "f, u, filler, v",
    [(6, 3, 0, 64), (5, 5, 7, 21), (4, 0, 2, 32), (1, 1, 1, 6)],
    ids=["F6-U3", "F5-U5-V21", "F4-U0", "F1-U1-V6"],
)
def test_fact_update_invariants(f, u, filler, v):
    n = 200
    task = fact_update(n, f, u, v, num_filler=filler, seed=1)
    t = fact_update_seq_len(f, u, filler)
    assert t == 4 * f + 2 * u + filler + 1
    assert task.inputs.shape == task.targets.shape == (n, t) and task.seq_len == t
    assert task.name == "fact_update" and task.special_tokens == {"query": FACT_QUERY}
    x, y = task.inputs.numpy(), task.targets.numpy()
    over, untouched = task.groups["overwritten"].numpy(), task.groups["untouched"].numpy()
    half = v // 2
    assert x.min() >= 0 and x.max() < v
    q0 = 2 * (f + u) + filler
    for i in range(n):
        row = x[i]
        writes = row[: 2 * (f + u)]
        wkeys, wvals = writes[0::2].tolist(), writes[1::2].tolist()
        assert all(1 <= k < half for k in wkeys), f"example {i}: keys {wkeys}"
        assert all(half <= w < v for w in wvals), f"example {i}: values {wvals}"
        assert len(set(wkeys[:f])) == f, f"example {i}: repeated keys {wkeys[:f]}"
        assert len(set(wvals)) == f + u, f"example {i}: repeated values {wvals}"
        updated = wkeys[f:]
        assert len(set(updated)) == u and set(updated) <= set(wkeys[:f]), f"example {i}"
        first = dict(zip(wkeys[:f], wvals[:f]))
        latest = dict(zip(wkeys, wvals))
        assert all(latest[k] != first[k] for k in updated), f"example {i}: value kept"
        fill = row[2 * (f + u) : q0]
        assert ((fill >= half) & (fill < v)).all(), f"example {i}: filler {fill}"
        assert row[q0] == FACT_QUERY and (row != FACT_QUERY).sum() == t - 1
        pos = np.flatnonzero(y[i] != IGNORE_INDEX)
        assert pos.tolist() == list(range(q0 + 1, t, 2)), f"example {i}: scored {pos}"
        queried = row[pos].tolist()
        assert sorted(queried) == sorted(first), f"example {i}: queried {queried}"
        assert y[i, pos].tolist() == [latest[k] for k in queried], f"example {i}: targets"
        # the answer follows each query as the next input
        assert row[pos + 1].tolist() == y[i, pos].tolist()
        assert [k in updated for k in queried] == over[i, pos].tolist(), f"example {i}"
    scored = y != IGNORE_INDEX
    assert not (over & untouched).any(), "groups overlap"
    assert ((over | untouched) == scored).all(), "groups do not cover the scored positions"
    assert (over.sum(axis=1) == u).all() and (untouched.sum(axis=1) == f - u).all()


def test_fact_update_queries_are_shuffled_and_seeded():
    a = fact_update(100, 8, 4, 64, num_filler=3, seed=7)
    b = fact_update(100, 8, 4, 64, num_filler=3, seed=7)
    c = fact_update(100, 8, 4, 64, num_filler=3, seed=8)
    assert torch.equal(a.inputs, b.inputs) and not torch.equal(a.inputs, c.inputs)
    x = a.inputs.numpy()
    q0 = 2 * 12 + 3 + 1
    same_order = [(x[i, q0::2] == x[i, 0:16:2]).all() for i in range(100)]
    assert sum(same_order) < 5, "queries are not shuffled"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_updates=9), "num_updates must be <= num_facts"),
        (dict(num_updates=-1), "num_updates must be an int >= 0"),
        (dict(num_facts=0), "num_facts must be an int >= 1"),
        (dict(num_filler=-2), "num_filler must be an int >= 0"),
        (dict(vocab_size=17), "at least num_facts \\(8\\) keys"),
        (dict(vocab_size=20, num_updates=4), "at least num_facts \\+ num_updates \\(12\\) values"),
    ],
    ids=["U>F", "U<0", "F0", "filler<0", "few-keys", "few-values"],
)
def test_fact_update_rejects_bad_arguments(kwargs, match):
    args = dict(num_examples=3, num_facts=8, num_updates=2, vocab_size=64) | kwargs
    with pytest.raises(ValueError, match=match):
        fact_update(**args)


# ---------------------------------------------------------------------------------------------
# Digit tasks


@pytest.mark.parametrize(
    "kind, output",
    [("copy", [3, 1, 2, 1]), ("reverse", [1, 2, 1, 3]), ("sort", [1, 1, 2, 3])],
)
def test_digit_task_hand_made(kind, output):
    task = digit_task(torch.tensor([[3, 1, 2, 1]]), kind)
    sep = 10
    assert task.name == kind and task.vocab_size == 11 and task.special_tokens == {"sep": sep}
    assert task.inputs.tolist() == [[sep, 3, 1, 2, 1, sep, *output]]
    assert task.targets.tolist() == [[-100] * 5 + output + [-100]]


@pytest.mark.parametrize(
    "make, kind", [(copy_task, "copy"), (reverse_task, "reverse"), (sort_task, "sort")]
)
def test_digit_generators(make, kind):
    task = make(64, 7, num_digits=5, seed=2)
    assert task.inputs.shape == (64, 16) and task.vocab_size == 6 and task.name == kind
    x = task.inputs[:, 1:8]
    assert x.min() >= 0 and x.max() < 5
    assert (task.inputs[:, 0] == 5).all() and (task.inputs[:, 8] == 5).all()
    expected = {"copy": x, "reverse": x.flip(1), "sort": x.sort(dim=1).values}[kind]
    assert torch.equal(task.targets[:, 8:15], expected)
    assert torch.equal(task.inputs[:, 9:], expected)
    assert (task.targets[:, :8] == IGNORE_INDEX).all() and (task.targets[:, 15] == -100).all()
    assert torch.equal(make(64, 7, num_digits=5, seed=2).inputs, task.inputs)
    assert not torch.equal(make(64, 7, num_digits=5, seed=3).inputs, task.inputs)


def test_digit_task_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        digit_task(torch.zeros(1, 3, dtype=torch.long), "rotate")
    with pytest.raises(ValueError, match="digits must lie in \\[0, num_digits=4\\)"):
        digit_task(torch.tensor([[1, 4]]), "copy", num_digits=4)
    with pytest.raises(ValueError, match="digits must be a non-empty 2-D integer"):
        digit_task(torch.tensor([1, 2]), "copy")
    with pytest.raises(ValueError, match="length must be an int >= 1"):
        copy_task(3, 0)
    with pytest.raises(ValueError, match="num_digits must be an int >= 2"):
        sort_task(3, 4, num_digits=1)


# ---------------------------------------------------------------------------------------------
# Accuracy


def hand_task() -> SyntheticTask:
    i = IGNORE_INDEX
    targets = torch.tensor(
        [
            [i, 5, i, 6, 7],  # 3 scored
            [i, i, i, i, i],  # none: skipped
            [4, i, i, i, 4],  # 2 scored
        ]
    )
    special = torch.zeros(3, 5, dtype=torch.bool)
    special[0, 1] = special[2, 0] = True
    return SyntheticTask(
        inputs=torch.zeros(3, 5, dtype=torch.long),
        targets=targets,
        vocab_size=8,
        name="hand",
        groups={"special": special, "other": (targets != i) & ~special},
    )


def test_accuracy_hand_made():
    task = hand_task()
    predictions = torch.tensor(
        [
            [0, 5, 0, 0, 7],  # 2 / 3 right
            [1, 1, 1, 1, 1],  # no scored positions
            [4, 0, 0, 0, 0],  # 1 / 2 right
        ]
    )
    assert accuracy(predictions, task) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert accuracy(predictions, task, group="special") == pytest.approx(1.0)
    # row 0 "other": positions 3, 4 -> 1 / 2; row 2 "other": position 4 -> 0 / 1
    assert accuracy(predictions, task, group="other") == pytest.approx(0.25)
    assert accuracy(task.targets.clamp(min=0), task) == 1.0
    logits = torch.nn.functional.one_hot(predictions, 8).float()
    assert logits_accuracy(logits, task) == accuracy(predictions, task)
    assert logits_accuracy(logits, task, group="other") == pytest.approx(0.25)


def test_accuracy_without_scored_positions_is_nan():
    task = hand_task()
    empty = SyntheticTask(
        task.inputs,
        torch.full_like(task.targets, -100),
        8,
        "empty",
        groups={"g": torch.zeros(3, 5, dtype=torch.bool)},
    )
    assert math.isnan(accuracy(task.inputs, empty))
    assert math.isnan(accuracy(task.inputs, empty, group="g"))


def test_accuracy_rejects_bad_arguments():
    task = hand_task()
    with pytest.raises(ValueError, match="predictions must have the task's shape"):
        accuracy(torch.zeros(3, 4, dtype=torch.long), task)
    with pytest.raises(ValueError, match="predictions must be integer token ids"):
        accuracy(torch.zeros(3, 5), task)
    with pytest.raises(ValueError, match="group must be one of \\['other', 'special'\\]"):
        accuracy(torch.zeros(3, 5, dtype=torch.long), task, group="overwritten")
    with pytest.raises(ValueError, match="logits must be 3-D"):
        logits_accuracy(torch.zeros(3, 5), task)


def test_fact_update_accuracy_by_group():
    task = fact_update(50, 6, 3, 64, seed=0)
    # a model that never saw the updates answers every key with its first value
    x = task.inputs.numpy()
    predictions = task.targets.clamp(min=0).clone()
    for i in range(50):
        first = dict(zip(x[i, 0:12:2].tolist(), x[i, 1:12:2].tolist()))
        for p in np.flatnonzero(task.groups["overwritten"][i].numpy()):
            predictions[i, p] = first[int(x[i, p])]
    assert accuracy(predictions, task, group="untouched") == 1.0
    assert accuracy(predictions, task, group="overwritten") == 0.0
    assert accuracy(predictions, task) == pytest.approx(0.5)


def test_synthetic_task_validates():
    x = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="inputs and targets must have one shape"):
        SyntheticTask(x, torch.zeros(2, 4, dtype=torch.long), 4, "bad")
    with pytest.raises(ValueError, match="targets must be a 2-D int64"):
        SyntheticTask(x, torch.zeros(2, 3, dtype=torch.int32), 4, "bad")
    with pytest.raises(ValueError, match="group 'g' selects unscored positions"):
        SyntheticTask(x, torch.full_like(x, -100), 4, "bad", groups={"g": torch.ones(2, 3) > 0})
    moved = fact_update(2, 2, 1, 16).to("cpu")
    assert set(moved.groups) == {"overwritten", "untouched"}


def test_mixture_pads_shuffles_and_keeps_every_example():
    from assoclm.data.synthetic import mixture

    short, long = mqar(30, 16, 2, 64, seed=1), mqar(20, 32, 4, 64, seed=2)
    mixed = mixture([short, long], 32, seed=0)
    assert mixed.inputs.shape == (50, 32) and mixed.vocab_size == 64
    # every example is there once, the short ones padded with 0 and unscored targets
    padded = torch.nn.functional.pad(short.inputs, (0, 16))
    rows = {tuple(r) for r in mixed.inputs.tolist()}
    assert rows == {tuple(r) for r in padded.tolist()} | {tuple(r) for r in long.inputs.tolist()}
    assert mixed.scored.sum() == short.scored.sum() + long.scored.sum()
    is_short = (mixed.inputs[:, 16:] == 0).all(1) & ~mixed.scored[:, 16:].any(1)
    assert is_short.sum() >= 30 and not torch.equal(mixed.inputs[:30], padded)  # shuffled
    with pytest.raises(ValueError, match="shorter than"):
        mixture([long], 16)
    with pytest.raises(ValueError, match="one vocabulary"):
        mixture([short, mqar(5, 16, 2, 128)], 32)
