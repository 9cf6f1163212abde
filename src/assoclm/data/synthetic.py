"""Synthetic recall tasks: MQAR, fact update, and copy / reverse / sort over digits.

Every generator is deterministic given ``seed`` (a local ``numpy.random.Generator``; no global
random state is read or changed) and returns a ``SyntheticTask``: ``inputs`` and ``targets``
of shape [N, T], int64, with ``targets[n, t]`` the token the model should predict after
reading ``inputs[n, :t + 1]``, or ``IGNORE_INDEX`` (-100, what ``F.cross_entropy`` skips)
where the position is not scored. ``accuracy`` / ``logits_accuracy`` score predictions.

Tasks:

- ``mqar``: Multi-Query Associative Recall exactly as Zoology defines it (Arora et al. 2023).
- ``fact_update``: facts written, some overwritten with new values, then every key queried;
  groups ``"overwritten"`` and ``"untouched"`` separate the two kinds of query.
- ``copy_task`` / ``reverse_task`` / ``sort_task`` (built by ``digit_task``): digits, a
  separator, and the digits copied, reversed or sorted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = [
    "DIGIT_TASKS",
    "FACT_QUERY",
    "IGNORE_INDEX",
    "SyntheticTask",
    "accuracy",
    "copy_task",
    "digit_task",
    "fact_update",
    "fact_update_seq_len",
    "logits_accuracy",
    "mixture",
    "mqar",
    "reverse_task",
    "sort_task",
]

IGNORE_INDEX = -100
"""Target of a position that is not scored (the default ``ignore_index`` of cross-entropy)."""

FACT_QUERY = 0
"""``fact_update``'s query marker: the one token that separates the writes from the queries."""


@dataclass(frozen=True)
class SyntheticTask:
    """A synthetic data set: aligned input and target tokens, all examples of one length.

    Attributes:
        inputs: token ids, [N, T] int64.
        targets: [N, T] int64; ``targets[n, t]`` is the token to predict after reading
            ``inputs[n, :t + 1]``, ``IGNORE_INDEX`` where position t is not scored.
        vocab_size: every token id in ``inputs`` and every scored target is in
            ``[0, vocab_size)``.
        name: the task's name (``"mqar"``, ``"fact_update"``, ``"copy"``, ...).
        groups: named subsets of the scored positions, each a [N, T] bool mask
            (``fact_update``: ``"overwritten"``, ``"untouched"``); ``accuracy(..., group=)``.
        special_tokens: reserved token ids by name (``{"sep": 10}`` for the digit tasks).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    vocab_size: int
    name: str
    groups: dict[str, torch.Tensor] = field(default_factory=dict)
    special_tokens: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for label, t in (("inputs", self.inputs), ("targets", self.targets)):
            if t.dim() != 2 or t.dtype != torch.int64:
                raise ValueError(
                    f"SyntheticTask.{label} must be a 2-D int64 tensor [N, T]; "
                    f"got {t.dtype} of shape {tuple(t.shape)}"
                )
        if self.inputs.shape != self.targets.shape:
            raise ValueError(
                f"SyntheticTask inputs and targets must have one shape; got "
                f"{tuple(self.inputs.shape)} and {tuple(self.targets.shape)}"
            )
        scored = self.scored
        for group, mask in self.groups.items():
            if mask.dtype != torch.bool or mask.shape != self.inputs.shape:
                raise ValueError(
                    f"SyntheticTask group {group!r} must be a bool mask of shape "
                    f"{tuple(self.inputs.shape)}; got {mask.dtype} of shape {tuple(mask.shape)}"
                )
            if (mask & ~scored).any():
                raise ValueError(f"SyntheticTask group {group!r} selects unscored positions")

    @property
    def num_examples(self) -> int:
        return self.inputs.shape[0]

    @property
    def seq_len(self) -> int:
        return self.inputs.shape[1]

    @property
    def scored(self) -> torch.Tensor:
        """[N, T] bool: the positions with a target."""
        return self.targets != IGNORE_INDEX

    def to(self, device: torch.device | str) -> SyntheticTask:
        """The same task with its tensors on ``device``."""
        return SyntheticTask(
            inputs=self.inputs.to(device),
            targets=self.targets.to(device),
            vocab_size=self.vocab_size,
            name=self.name,
            groups={k: v.to(device) for k, v in self.groups.items()},
            special_tokens=dict(self.special_tokens),
        )


def accuracy(predictions: torch.Tensor, task: SyntheticTask, group: str | None = None) -> float:
    """Per-example accuracy, averaged over examples.

    For each example, the fraction of its scored positions (only those in ``group`` when
    given) where ``predictions == task.targets``; then the mean of those fractions over the
    examples that have at least one such position. Examples without any are skipped, so
    every example weighs the same whatever its number of queries. NaN if no example has one.

    Args:
        predictions: predicted token ids, [N, T] integer, aligned with ``task.targets``.
        task: the task the predictions are for.
        group: a name in ``task.groups`` to score only that subset, or None for all.
    """
    if predictions.shape != task.targets.shape:
        raise ValueError(
            f"predictions must have the task's shape {tuple(task.targets.shape)} [N, T]; "
            f"got {tuple(predictions.shape)}"
        )
    if predictions.dtype.is_floating_point or predictions.dtype == torch.bool:
        raise ValueError(
            f"predictions must be integer token ids; got {predictions.dtype} "
            "(use logits_accuracy for logits)"
        )
    targets = task.targets.to(predictions.device)
    mask = targets != IGNORE_INDEX
    if group is not None:
        if group not in task.groups:
            raise ValueError(
                f"group must be one of {sorted(task.groups)} for task {task.name!r}; got {group!r}"
            )
        mask = mask & task.groups[group].to(predictions.device)
    counts = mask.sum(dim=1)
    correct = ((predictions.long() == targets) & mask).sum(dim=1)
    has = counts > 0
    if not has.any():
        return math.nan
    return (correct[has].double() / counts[has].double()).mean().item()


def logits_accuracy(logits: torch.Tensor, task: SyntheticTask, group: str | None = None) -> float:
    """``accuracy`` of the argmax of ``logits`` [N, T, V] (any V) over the last axis."""
    if logits.dim() != 3:
        raise ValueError(f"logits must be 3-D [N, T, V]; got shape {tuple(logits.shape)}")
    return accuracy(logits.argmax(dim=-1), task, group=group)


def mixture(tasks: list[SyntheticTask], seq_len: int, seed: int = 0) -> SyntheticTask:
    """The examples of several tasks of one vocabulary in one shuffled set of length
    ``seq_len``: shorter examples are padded at the end with token 0 and unscored targets.

    For training on several settings at once, as Zoology trains MQAR on a mix of
    (sequence length, key-value pairs) settings so that the short, easy ones teach the
    recall mechanism the long ones need. The models are causal, so padding after an example
    changes none of its predictions. Groups are dropped (they differ between tasks).
    """
    if not tasks:
        raise ValueError("mixture needs at least one task")
    vocab = {t.vocab_size for t in tasks}
    if len(vocab) != 1:
        raise ValueError(f"mixture: the tasks must share one vocabulary; got sizes {sorted(vocab)}")
    too_long = [t.seq_len for t in tasks if t.seq_len > seq_len]
    if too_long:
        raise ValueError(f"mixture: seq_len {seq_len} is shorter than a task's {max(too_long)}")
    inputs, targets = [], []
    for t in tasks:
        pad = seq_len - t.seq_len
        inputs.append(torch.nn.functional.pad(t.inputs, (0, pad), value=0))
        targets.append(torch.nn.functional.pad(t.targets, (0, pad), value=IGNORE_INDEX))
    order = torch.randperm(sum(t.num_examples for t in tasks),
                           generator=torch.Generator().manual_seed(seed))
    names = sorted({t.name for t in tasks})
    return SyntheticTask(inputs=torch.cat(inputs)[order], targets=torch.cat(targets)[order],
                         vocab_size=vocab.pop(), name="+".join(names))


def mqar(
    num_examples: int,
    seq_len: int,
    num_kv_pairs: int,
    vocab_size: int,
    power_a: float = 0.01,
    random_non_queries: bool = True,
    seed: int = 0,
) -> SyntheticTask:
    """Multi-Query Associative Recall (MQAR), as defined by Zoology.

    Arora, Eyuboglu, Timalsina, Johnson, Poli, Zou, Rudra, Ré. "Zoology: Measuring and
    Improving Recall in Efficient Language Models", arXiv:2312.04927 (2023); the definition
    followed is ``multiquery_ar`` in github.com/HazyResearch/zoology
    (``zoology/data/multiquery_ar.py``, with ``num_passes=1``).

    With V = ``vocab_size``, D = ``num_kv_pairs``, T = ``seq_len``, per example:

    1. keys k_1..k_D: drawn uniformly without replacement from ``[1, V // 2)``; values
       v_1..v_D: uniformly without replacement from ``[V // 2, V)``.
    2. Context: positions 0..2D-1 hold ``k_1 v_1 k_2 v_2 ... k_D v_D``.
    3. The rest holds ``space = (T - 2D) / 2`` query slots. Slots g_1..g_D (0-based) are
       drawn without replacement, one after another, each with probability proportional to
       the power law ``p(i) = a * i ** (a - 1)`` over the slot's 1-based index i = g + 1
       (a = ``power_a``; a = 1 is uniform, small a favours the first slots), renormalised
       over the slots not yet drawn; this is ``numpy``'s ``choice(space, D, replace=False,
       p=p)``. Key k_j goes to slot g_j: ``inputs[2D + 2 g_j] = k_j`` and
       ``targets[2D + 2 g_j] = v_j`` (the value is the label of the token after the key).
    4. Every other target is ``IGNORE_INDEX``; every other position after the context is 0,
       and with ``random_non_queries`` each of those zeros is replaced by a token drawn
       uniformly from ``[0, V)`` (which may be a key, a value or 0 again, as in Zoology).

    So each example has exactly D scored positions, all after the context, and every key is
    queried once. Because the slots are drawn in order, the keys early in the context tend
    to be queried early, as in Zoology. Zoology draws with ``np.random``'s global state and
    ``torch.randint``; here a local generator draws the same distribution (the slots by
    Gumbel top-k, which equals drawing without replacement one after another: Kool et al.
    2019, "Stochastic Beams and Where to Find Them"), so the tokens differ from Zoology's
    for the same seed.

    Example (V = 20, D = 2, T = 12, ``random_non_queries=False``; slots 0 and 3)::

        inputs:  3  14   7  11   3   0   0   0   0   0   7   0
        targets: .   .   .   .  14   .   .   .   .   .  11   .      (. = IGNORE_INDEX)

    Args:
        num_examples: N >= 1.
        seq_len: T, even, with ``4 * num_kv_pairs <= seq_len < vocab_size``.
        num_kv_pairs: D >= 1.
        vocab_size: V > T.
        power_a: a > 0, the power law's exponent parameter.
        random_non_queries: fill the non-query positions with random tokens instead of 0.
        seed: seeds the local generator.

    Returns:
        SyntheticTask ``"mqar"``: inputs, targets [N, T]; no groups.
    """
    _check_int("num_examples", num_examples, 1)
    _check_int("num_kv_pairs", num_kv_pairs, 1)
    _check_int("seq_len", seq_len, 1)
    _check_int("vocab_size", vocab_size, 1)
    if seq_len % 2:
        raise ValueError(f"seq_len must be even (key and query slots are pairs); got {seq_len}")
    if vocab_size <= seq_len:
        raise ValueError(f"vocab_size must be > seq_len ({seq_len}); got {vocab_size}")
    if 4 * num_kv_pairs > seq_len:
        raise ValueError(
            f"num_kv_pairs must be <= seq_len / 4 = {seq_len // 4} (a 2D-token context and D "
            f"query slots of 2 tokens); got {num_kv_pairs}"
        )
    if not (isinstance(power_a, (int, float)) and math.isfinite(power_a) and power_a > 0):
        raise ValueError(f"power_a must be a finite number > 0; got {power_a!r}")

    rng = np.random.default_rng(seed)
    n, d = num_examples, num_kv_pairs
    half = vocab_size // 2
    context = 2 * d
    keys = 1 + _sample_distinct(rng, n, half - 1, d)
    values = half + _sample_distinct(rng, n, vocab_size - half, d)

    space = (seq_len - context) // 2
    log_p = (power_a - 1.0) * np.log(np.arange(1, space + 1, dtype=np.float64))
    slots = _sample_weighted(rng, n, log_p, d)

    inputs = np.zeros((n, seq_len), dtype=np.int64)
    targets = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    inputs[:, 0:context:2] = keys
    inputs[:, 1:context:2] = values
    query_pos = context + 2 * slots
    np.put_along_axis(inputs, query_pos, keys, axis=1)
    np.put_along_axis(targets, query_pos, values, axis=1)
    if random_non_queries:
        zero = inputs == 0
        inputs[zero] = rng.integers(0, vocab_size, size=int(zero.sum()))
    return SyntheticTask(
        inputs=torch.from_numpy(inputs),
        targets=torch.from_numpy(targets),
        vocab_size=vocab_size,
        name="mqar",
    )


def fact_update_seq_len(num_facts: int, num_updates: int, num_filler: int = 0) -> int:
    """Length T of a ``fact_update`` example: ``4 * num_facts + 2 * num_updates +
    num_filler + 1``."""
    return 2 * num_facts + 2 * num_updates + num_filler + 1 + 2 * num_facts


def fact_update(
    num_examples: int,
    num_facts: int,
    num_updates: int,
    vocab_size: int,
    num_filler: int = 0,
    seed: int = 0,
) -> SyntheticTask:
    """Facts written, some overwritten, then every fact queried: does recall follow updates?

    The Propagator seed's test ("sky -> red; then sky -> blue, grass -> green; sky?") as a
    data set. Tokens (V = ``vocab_size``): ``FACT_QUERY`` (0) is the query marker, keys are
    ``[1, V // 2)`` and values ``[V // 2, V)``, MQAR's split. Per example, with F =
    ``num_facts``, U = ``num_updates``, L = ``num_filler``:

    1. Writes: ``k_1 v_1 ... k_F v_F``; F distinct keys, F distinct values.
    2. Updates: ``k'_1 w_1 ... k'_U w_U``; U distinct keys among k_1..k_F in random order,
       each with a new value: the F + U values of an example are all distinct, so every
       update changes its key's value and no value token is shared by two writes.
    3. Filler: L tokens drawn uniformly from the values ``[V // 2, V)``. Filler holds no key,
       so it cannot be read as a write; it only puts distance between writes and queries.
    4. ``FACT_QUERY``, then each of the F keys once, in random order, each followed by its
       latest value: ``q_1 a_1 ... q_F a_F``. The target at ``q_j`` is ``a_j``; the answer
       is also the next input, as when a model's own answer is fed back.

    All other targets are ``IGNORE_INDEX``. T = ``fact_update_seq_len(F, U, L)`` =
    4F + 2U + L + 1. Example (V = 20, F = 2, U = 1, L = 1; keys 4, 7; values 12, 15, 18)::

        inputs:  4 12  7 15  4 18 13  0  7 15  4 18
        targets: .  .  .  .  .  .  .  .  15 .  18 .      (. = IGNORE_INDEX)
        overwritten at the query of 4, untouched at the query of 7

    Args:
        num_examples: N >= 1.
        num_facts: F >= 1, with ``F <= V // 2 - 1``.
        num_updates: U, ``0 <= U <= F``, with ``F + U <= V - V // 2``.
        vocab_size: V.
        num_filler: L >= 0.
        seed: seeds the local generator.

    Returns:
        SyntheticTask ``"fact_update"`` [N, T] with groups ``"overwritten"`` (queries of
        updated keys) and ``"untouched"`` (the others), which partition the scored positions,
        and ``special_tokens={"query": FACT_QUERY}``.
    """
    _check_int("num_examples", num_examples, 1)
    _check_int("num_facts", num_facts, 1)
    _check_int("num_updates", num_updates, 0)
    _check_int("num_filler", num_filler, 0)
    _check_int("vocab_size", vocab_size, 1)
    if num_updates > num_facts:
        raise ValueError(
            f"num_updates must be <= num_facts ({num_facts}): each update overwrites a "
            f"distinct written key; got {num_updates}"
        )
    half = vocab_size // 2
    if num_facts > half - 1:
        raise ValueError(
            f"vocab_size must give at least num_facts ({num_facts}) keys in [1, vocab_size "
            f"// 2), i.e. vocab_size >= {2 * num_facts + 2}; got {vocab_size}"
        )
    if num_facts + num_updates > vocab_size - half:
        raise ValueError(
            f"vocab_size must give at least num_facts + num_updates "
            f"({num_facts + num_updates}) values in [vocab_size // 2, vocab_size), i.e. "
            f"vocab_size >= {2 * (num_facts + num_updates) - 1}; got {vocab_size}"
        )

    rng = np.random.default_rng(seed)
    n, f, u = num_examples, num_facts, num_updates
    rows = np.arange(n)[:, None]
    keys = 1 + _sample_distinct(rng, n, half - 1, f)
    values = half + _sample_distinct(rng, n, vocab_size - half, f + u)
    # which facts get updated, in update order; update j gives fact updated[:, j] value f + j
    updated = _sample_distinct(rng, n, f, u)
    latest = values[:, :f].copy()
    latest[rows, updated] = values[:, f:]
    is_updated = np.zeros((n, f), dtype=bool)
    is_updated[rows, updated] = True
    order = _sample_distinct(rng, n, f, f)

    writes = np.empty((n, 2 * (f + u)), dtype=np.int64)
    writes[:, 0 : 2 * f : 2] = keys
    writes[:, 1 : 2 * f : 2] = values[:, :f]
    writes[:, 2 * f :: 2] = keys[rows, updated]
    writes[:, 2 * f + 1 :: 2] = values[:, f:]
    filler = half + rng.integers(0, vocab_size - half, size=(n, num_filler))
    queries = np.empty((n, 2 * f), dtype=np.int64)
    queries[:, 0::2] = keys[rows, order]
    queries[:, 1::2] = latest[rows, order]
    marker = np.full((n, 1), FACT_QUERY, dtype=np.int64)
    inputs = np.concatenate([writes, filler, marker, queries], axis=1)

    seq_len = fact_update_seq_len(f, u, num_filler)
    start = seq_len - 2 * f
    targets = np.full((n, seq_len), IGNORE_INDEX, dtype=np.int64)
    targets[:, start::2] = latest[rows, order]
    overwritten = np.zeros((n, seq_len), dtype=bool)
    overwritten[:, start::2] = is_updated[rows, order]
    untouched = (targets != IGNORE_INDEX) & ~overwritten
    return SyntheticTask(
        inputs=torch.from_numpy(inputs),
        targets=torch.from_numpy(targets),
        vocab_size=vocab_size,
        name="fact_update",
        groups={
            "overwritten": torch.from_numpy(overwritten),
            "untouched": torch.from_numpy(untouched),
        },
        special_tokens={"query": FACT_QUERY},
    )


DIGIT_TASKS: Mapping[str, Callable[[np.ndarray], np.ndarray]] = {
    "copy": lambda x: x.copy(),
    "reverse": lambda x: x[:, ::-1].copy(),
    "sort": lambda x: np.sort(x, axis=1),
}
"""The digit tasks by name: each maps digits [N, L] to the expected output [N, L]."""


def digit_task(digits: torch.Tensor | np.ndarray, kind: str, num_digits: int = 10) -> SyntheticTask:
    """A copy / reverse / sort task over the given digits.

    Tokens: digits ``0 .. num_digits - 1`` and one separator ``SEP = num_digits``
    (``vocab_size = num_digits + 1``). With input digits x_1..x_L and the output y_1..y_L
    (x copied, reversed, or sorted ascending), each example is the 2L + 2 tokens::

        position: 0     1 .. L       L+1   L+2 .. 2L+1
        inputs:   SEP   x_1 .. x_L   SEP   y_1 .. y_L
        targets:  .     . .. .       y_1   y_2 .. y_L  .       (. = IGNORE_INDEX)

    so the scored positions are L+1 .. 2L (the L output digits, each predicted from the
    previous token), and ``inputs[:, L + 2:]`` is the expected output. Example: ``x = 3 1 2``,
    ``"reverse"``, 10 digits: inputs ``10 3 1 2 10 2 1 3``, targets ``. . . . 2 1 3 .``.

    Args:
        digits: the input digits x, [N, L] integer in ``[0, num_digits)``, N >= 1, L >= 1.
        kind: ``"copy"``, ``"reverse"`` or ``"sort"``.
        num_digits: how many digit tokens, >= 2.

    Returns:
        SyntheticTask named ``kind``, [N, 2L + 2], ``special_tokens={"sep": num_digits}``.
    """
    if kind not in DIGIT_TASKS:
        raise ValueError(f"kind must be one of {sorted(DIGIT_TASKS)}; got {kind!r}")
    _check_int("num_digits", num_digits, 2)
    x = digits.cpu().numpy() if isinstance(digits, torch.Tensor) else np.asarray(digits)
    if x.ndim != 2 or min(x.shape) < 1 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(
            f"digits must be a non-empty 2-D integer array [N, L]; got {x.dtype} of shape {x.shape}"
        )
    if x.min() < 0 or x.max() >= num_digits:
        raise ValueError(
            f"digits must lie in [0, num_digits={num_digits}); got values in [{x.min()}, {x.max()}]"
        )
    x = x.astype(np.int64)
    y = DIGIT_TASKS[kind](x)
    n, length = x.shape
    sep = np.full((n, 1), num_digits, dtype=np.int64)
    inputs = np.concatenate([sep, x, sep, y], axis=1)
    targets = np.full_like(inputs, IGNORE_INDEX)
    targets[:, length + 1 : 2 * length + 1] = y
    return SyntheticTask(
        inputs=torch.from_numpy(inputs),
        targets=torch.from_numpy(targets),
        vocab_size=num_digits + 1,
        name=kind,
        special_tokens={"sep": num_digits},
    )


def copy_task(num_examples: int, length: int, num_digits: int = 10, seed: int = 0) -> SyntheticTask:
    """Copy ``length`` digits drawn uniformly from ``[0, num_digits)``; layout in
    ``digit_task``. Returns [N, 2 * length + 2]."""
    return digit_task(_random_digits(num_examples, length, num_digits, seed), "copy", num_digits)


def reverse_task(
    num_examples: int, length: int, num_digits: int = 10, seed: int = 0
) -> SyntheticTask:
    """Reverse ``length`` digits drawn uniformly from ``[0, num_digits)``; layout in
    ``digit_task``. Returns [N, 2 * length + 2]."""
    digits = _random_digits(num_examples, length, num_digits, seed)
    return digit_task(digits, "reverse", num_digits)


def sort_task(num_examples: int, length: int, num_digits: int = 10, seed: int = 0) -> SyntheticTask:
    """Sort (ascending) ``length`` digits drawn uniformly from ``[0, num_digits)``; layout in
    ``digit_task``. Returns [N, 2 * length + 2]."""
    return digit_task(_random_digits(num_examples, length, num_digits, seed), "sort", num_digits)


def _random_digits(num_examples: int, length: int, num_digits: int, seed: int) -> np.ndarray:
    _check_int("num_examples", num_examples, 1)
    _check_int("length", length, 1)
    _check_int("num_digits", num_digits, 2)
    return np.random.default_rng(seed).integers(0, num_digits, size=(num_examples, length))


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")


# Rows per chunk in the samplers, so that their [rows, pool] scratch stays small.
_CHUNK_ELEMENTS = 1 << 22


def _sample_distinct(rng: np.random.Generator, rows: int, pool: int, k: int) -> np.ndarray:
    """Per row, ``k`` distinct draws from ``range(pool)`` in uniformly random order, [rows, k]
    int64: the law of ``rng.choice(pool, k, replace=False)``, for all rows at once.

    Floyd's algorithm picks a uniform k-subset with one draw per element (vectorised over
    rows, with a [rows, pool] table of what is taken); a per-row shuffle then makes the
    order uniform.
    """
    out = np.empty((rows, k), dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // max(pool, 1))
    for lo in range(0, rows, step):
        m = min(step, rows - lo)
        r = np.arange(m)
        taken = np.zeros((m, pool), dtype=bool)
        for i, j in enumerate(range(pool - k, pool)):
            t = rng.integers(0, j + 1, size=m)
            pick = np.where(taken[r, t], j, t)
            taken[r, pick] = True
            out[lo : lo + m, i] = pick
    return rng.permuted(out, axis=1)


def _sample_weighted(rng: np.random.Generator, rows: int, log_w: np.ndarray, k: int) -> np.ndarray:
    """Per row, ``k`` distinct indices into ``log_w`` [S] drawn one after another without
    replacement, each with probability proportional to ``exp(log_w)`` among those left, in
    draw order, [rows, k] int64: the law of ``rng.choice(S, k, replace=False, p=w / w.sum())``.

    Gumbel top-k: the k largest of ``log_w + Gumbel noise``, by decreasing score.
    """
    space = log_w.shape[0]
    out = np.empty((rows, k), dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // space)
    for lo in range(0, rows, step):
        m = min(step, rows - lo)
        scores = log_w + rng.gumbel(size=(m, space))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        by_score = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[lo : lo + m] = np.take_along_axis(top, by_score, axis=1)
    return out
