"""Held-out metrics of the full-duplex protocol (docs/ARCHITECTURE.md, "Full-duplex event
protocol").

A session is scored from its aligned token arrays ``input_ids``, ``target_ids`` and
``weights`` (the stream builder's output, see :mod:`assoclm.duplex.protocol`) and the model's
predictions. Only positions with weight > 0 count:
weight 0 marks padding and the untrainable token before an interrupt. Every counted position
counts once, whatever its weight.

* **decision accuracy**: over positions whose target is a control id (other than ``[PAD]``),
  the fraction where the greedy prediction (argmax id) equals the target.
* **listen accuracy**: over positions whose target is ``[LISTEN]``, the fraction predicted
  ``[LISTEN]``.
* **user-end recall**: over positions whose target is ``[USER_END]``, the fraction predicted
  ``[USER_END]``.
* **turn-taking precision**: over user-stream positions (target is ``[LISTEN]`` or
  ``[USER_END]``) where the prediction is ``[USER_END]``, the fraction whose target is
  ``[USER_END]``. A ``[USER_END]`` predicted anywhere else (on model content, say) does not
  count.
* **interrupt-yield accuracy**: over positions whose *input* is ``[USER_INTERRUPT]`` (target
  ``[MODEL_END]``), the fraction predicted ``[MODEL_END]``. The input, not the target, picks
  these positions: ``[MODEL_END]`` is also the target at a natural end of turn.
* **model-turn bits per byte**: over model-content positions (target not a control id), the
  sum of the target's negative log-likelihood in nats / ln 2 / total UTF-8 bytes of those
  target tokens (bytes per id from a ``byte_lengths`` [vocab] tensor, as made by
  :func:`assoclm.train.evaluate.token_byte_lengths`).
* **memory recall**: for each :class:`~assoclm.duplex.protocol.Probe`, the model's greedy
  answer text "contains the right value": a case-insensitive match of the value as a whole
  word/phrase (word boundaries) in the answer text. Reported separately for kind "updated"
  and "untouched", plus overall.

**Predictions** are the decisions the live session (:mod:`assoclm.duplex.session`) makes.
While the user holds the floor (target ``[LISTEN]`` or ``[USER_END]``) the model's only
choice is to keep listening or to take the turn, and it takes the turn when
``logit[USER_END] − logit[LISTEN] > end_margin`` (:func:`turn_end_margin` says how the margin
follows from the training weights). Everywhere else the prediction is the argmax id over the
whole vocabulary. (A text token that outscores both at a listening position is not a
decision anyone acts on, so it is not counted as one.)

**The turn-taking trade-off.** A larger margin makes the model take the turn less often:
turn-taking precision rises and user-end recall falls. :meth:`ProtocolMetrics.update` also
tabulates both at every margin of :data:`CURVE_MARGINS` (``turn_taking_curve``), so that one
pass shows the whole trade-off and the margin at which a precision is first reached
(:func:`margin_for_precision`).

Each metric reports its value with its numerator and denominator counts
(``{"value", "correct", "total"}``; bits per byte: ``{"value", "bits", "bytes", "tokens"}``).
A metric with an empty denominator has value ``None`` (not 0, not NaN), so the JSON written
by :func:`write_metrics_json` stays valid.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from assoclm.duplex.protocol import PROBE_KINDS, Probe
from assoclm.io import save_figure_atomic, write_json_atomic
from assoclm.tokenizer import CONTROL_IDS, NUM_CONTROL, PAD_ID

LISTEN = CONTROL_IDS["[LISTEN]"]
USER_END = CONTROL_IDS["[USER_END]"]
USER_INTERRUPT = CONTROL_IDS["[USER_INTERRUPT]"]
MODEL_END = CONTROL_IDS["[MODEL_END]"]

# The seed's published figures (docs/ARCHITECTURE.md) and the goals set for them, as
# fractions, keyed like the metrics, so that a report can set a run beside them.
SEED_REPORTED: dict[str, float] = {
    "decision_accuracy": 0.954,
    "listen_accuracy": 0.953,
    "turn_taking_precision": 0.988,
}
GOALS: dict[str, float] = {
    "decision_accuracy": 0.99,
    "listen_accuracy": 0.99,
    "turn_taking_precision": 0.99,
    "memory_recall_updated": 0.95,
}

ACCURACY_METRICS: tuple[str, ...] = (
    "decision_accuracy",
    "listen_accuracy",
    "user_end_recall",
    "turn_taking_precision",
    "interrupt_yield_accuracy",
)

TensorLike = torch.Tensor | np.ndarray | Sequence[Any]

# Margins (nats) at which the turn-taking trade-off is tabulated: -4 to 20 in steps of 0.5.
CURVE_MARGINS: tuple[float, ...] = tuple(m / 2 for m in range(-8, 41))


def turn_end_margin(listen_weight: float, control_weight: float = 1.0) -> float:
    """The logit margin that undoes the training weights in the turn-taking decision.

    Trained with loss weight ``w_E`` on ``[USER_END]`` targets and ``w_L`` on ``[LISTEN]``
    targets, a model's odds of ``[USER_END]`` over ``[LISTEN]`` at a position converge to the
    true odds times ``w_E / w_L`` (the minimiser of the weighted cross-entropy). With the
    defaults (1.0 and 0.05) an ambiguous pause with a 1-in-10 chance of being the end of the
    turn gets odds of 2:1, and the model would cut the user off. Subtracting
    ``log(w_E / w_L)`` from the logit gap gives calibrated odds, so "take the turn when the
    odds exceed 1" is the decision that is right most often (logit adjustment: Menon et al.
    2021, "Long-tail learning via logit adjustment", arXiv 2007.07314).

    Returns 0.0 when ``listen_weight`` is 0 (nothing to undo: ``[LISTEN]`` was not trained).
    """
    if listen_weight < 0 or control_weight <= 0:
        raise ValueError(f"loss weights must be listen >= 0 and control > 0; got "
                         f"{listen_weight} and {control_weight}")
    return math.log(control_weight / listen_weight) if listen_weight > 0 else 0.0


def turn_decisions(logits: torch.Tensor, listening: torch.Tensor, end_margin: float = 0.0
                   ) -> torch.Tensor:
    """Predicted ids [...] from logits [..., V]: at ``listening`` positions [...] (bool)
    ``[USER_END]`` if ``logit[USER_END] − logit[LISTEN] > end_margin`` else ``[LISTEN]``;
    elsewhere the argmax over the vocabulary."""
    gap = logits[..., USER_END].float() - logits[..., LISTEN].float()
    pair = torch.where(gap > end_margin, USER_END, LISTEN)
    return torch.where(listening, pair, logits.argmax(dim=-1))


def ratio(correct: int, total: int) -> dict[str, Any]:
    """``{"value", "correct", "total"}``; value is ``correct / total``, or None when total is 0."""
    return {"value": correct / total if total else None, "correct": correct, "total": total}


class ProtocolMetrics:
    """Accumulates the token-level protocol metrics over batches and sessions.

    Args:
        byte_lengths: [vocab] integer bytes of text per id (0 for control ids). Without it,
            bits per byte has value None (bits and tokens are still counted).
        end_margin: the turn-taking margin of :func:`turn_decisions` (see
            :func:`turn_end_margin`), used by :meth:`update`.
    """

    def __init__(self, byte_lengths: torch.Tensor | None = None, end_margin: float = 0.0
                 ) -> None:
        if not math.isfinite(end_margin):
            raise ValueError(f"end_margin must be a finite number; got {end_margin}")
        self.end_margin = float(end_margin)
        if byte_lengths is not None:
            byte_lengths = torch.as_tensor(byte_lengths).detach().to("cpu", torch.int64)
            if byte_lengths.ndim != 1:
                raise ValueError(f"byte_lengths must be [vocab]; got shape "
                                 f"{tuple(byte_lengths.shape)}")
        self.byte_lengths = byte_lengths
        self._byte_lengths_on: dict[torch.device, torch.Tensor] = {}
        self.counts: dict[str, int] = {
            f"{name}_{part}": 0 for name in ACCURACY_METRICS for part in ("correct", "total")
        }
        self.model_nats = 0.0
        self.model_bytes = 0
        self.model_tokens = 0
        # The trade-off, per margin of CURVE_MARGINS: listening positions whose target is
        # [USER_END] / [LISTEN] and whose gap logit[USER_END] − logit[LISTEN] exceeds it.
        self.curve_end = np.zeros(len(CURVE_MARGINS), dtype=np.int64)
        self.curve_listen = np.zeros(len(CURVE_MARGINS), dtype=np.int64)
        self.curve_positions = 0  # listening positions tabulated (only update() sees logits)
        # Whether earlier updates brought nll: bits per byte over only some batches would be
        # a different number, so mixing the two is refused.
        self._with_nll: bool | None = None

    def update(self, input_ids: TensorLike, target_ids: TensorLike, weights: TensorLike,
               logits: torch.Tensor) -> None:
        """Score one batch from the model's logits.

        Args:
            input_ids, target_ids, weights: [B, T] or [T].
            logits: [B, T, V] or [T, V]; the predictions are :func:`turn_decisions` (the
                listening positions are those whose target is ``[LISTEN]`` or
                ``[USER_END]``), the nll comes from ``log_softmax(logits.float())``.
        """
        logits = torch.as_tensor(logits)
        target_ids = torch.as_tensor(target_ids, device=logits.device).long()
        if logits.shape[:-1] != target_ids.shape:
            raise ValueError(f"logits {tuple(logits.shape)} must be target_ids "
                             f"{tuple(target_ids.shape)} plus a vocabulary axis")
        listening = (target_ids == LISTEN) | (target_ids == USER_END)
        predicted = turn_decisions(logits, listening, self.end_margin)
        self._tabulate_curve(target_ids, weights, logits)
        content = target_ids >= NUM_CONTROL
        nll = torch.zeros(target_ids.shape, dtype=torch.float32, device=logits.device)
        if bool(content.any()):
            # Only model-content positions need the softmax; update_predictions reads no other.
            log_probs = torch.log_softmax(logits[content].float(), dim=-1)  # [N, V]
            nll[content] = -log_probs.gather(-1, target_ids[content][:, None])[:, 0]
        self.update_predictions(input_ids, target_ids, weights, predicted, nll)

    def _tabulate_curve(self, target_ids: torch.Tensor, weights: TensorLike,
                        logits: torch.Tensor) -> None:
        counted = torch.as_tensor(weights, device=logits.device).reshape(target_ids.shape) > 0
        end = counted & (target_ids == USER_END)
        listen = counted & (target_ids == LISTEN)
        gap = logits[..., USER_END].float() - logits[..., LISTEN].float()
        margins = torch.tensor(CURVE_MARGINS, device=logits.device)
        above = torch.stack([(gap[end][:, None] > margins).sum(0),
                             (gap[listen][:, None] > margins).sum(0)]).cpu().numpy()
        self.curve_end += above[0]
        self.curve_listen += above[1]
        self.curve_positions += int(end.sum()) + int(listen.sum())

    def update_predictions(self, input_ids: TensorLike, target_ids: TensorLike,
                           weights: TensorLike, predicted_ids: TensorLike,
                           nll: TensorLike | None = None) -> None:
        """Score one batch from greedy predictions.

        Args:
            input_ids, target_ids, weights, predicted_ids: [B, T] or [T], same shape.
            nll: [B, T] or [T] nats of each target under the model; needed for bits per byte,
                read only at model-content positions. Give it in every update or in none.
        """
        target = torch.as_tensor(target_ids)
        if target.ndim not in (1, 2):
            raise ValueError(f"target_ids must be [B, T] or [T]; got {tuple(target.shape)}")
        device, shape = target.device, target.shape
        target = target.long().flatten()
        tensors = {"input_ids": input_ids, "weights": weights, "predicted_ids": predicted_ids}
        if nll is not None:
            tensors["nll"] = nll
        flat = {}
        for name, value in tensors.items():
            value = torch.as_tensor(value, device=device)
            if value.shape != shape:
                raise ValueError(f"{name} has shape {tuple(value.shape)}; target_ids has "
                                 f"{tuple(shape)}")
            flat[name] = value.flatten()
        inputs = flat["input_ids"].long()
        predicted = flat["predicted_ids"].long()
        counted = flat["weights"] > 0

        control_target = counted & (target < NUM_CONTROL) & (target != PAD_ID)
        listen = counted & (target == LISTEN)
        user_end = counted & (target == USER_END)
        said_end = (listen | user_end) & (predicted == USER_END)
        interrupt = counted & (inputs == USER_INTERRUPT)
        content = counted & (target >= NUM_CONTROL)
        # One stacked tensor and one transfer for every count of this batch.
        counts = torch.stack([
            (control_target & (predicted == target)).sum(), control_target.sum(),
            (listen & (predicted == LISTEN)).sum(), listen.sum(),
            (user_end & (predicted == USER_END)).sum(), user_end.sum(),
            (said_end & (target == USER_END)).sum(), said_end.sum(),
            (interrupt & (predicted == MODEL_END)).sum(), interrupt.sum(),
            content.sum(),
        ]).tolist()
        n_content = counts[-1]
        with_nll = nll is not None
        if n_content and self._with_nll is not None and self._with_nll != with_nll:
            raise ValueError("nll was given in some updates and not in others; bits per byte "
                             "would cover only part of the model turns")
        for i, name in enumerate(ACCURACY_METRICS):
            self.counts[f"{name}_correct"] += counts[2 * i]
            self.counts[f"{name}_total"] += counts[2 * i + 1]
        self.model_tokens += n_content
        if n_content:
            self._with_nll = with_nll
        if with_nll and n_content:
            self.model_nats += float(flat["nll"][content].double().sum())
        if self.byte_lengths is not None and n_content:
            lengths = self._byte_lengths_on.get(device)
            if lengths is None:
                lengths = self._byte_lengths_on.setdefault(device, self.byte_lengths.to(device))
            self.model_bytes += int(lengths[target[content]].sum())

    def merge(self, other: ProtocolMetrics) -> ProtocolMetrics:
        """Add ``other``'s counts to these (e.g. per-source accumulators into a total)."""
        if (self.byte_lengths is None) != (other.byte_lengths is None):
            raise ValueError("cannot merge metrics with and without byte_lengths")
        if self.end_margin != other.end_margin:
            raise ValueError(f"cannot merge metrics of different decision rules (end_margin "
                             f"{self.end_margin} and {other.end_margin})")
        if other.model_tokens:
            if self.model_tokens and self._with_nll != other._with_nll:
                raise ValueError("nll was given in one accumulator's updates and not in the "
                                 "other's; bits per byte would cover only part of the turns")
            self._with_nll = other._with_nll
        for name, count in other.counts.items():
            self.counts[name] += count
        self.model_nats += other.model_nats
        self.model_bytes += other.model_bytes
        self.model_tokens += other.model_tokens
        self.curve_end += other.curve_end
        self.curve_listen += other.curve_listen
        self.curve_positions += other.curve_positions
        return self

    def turn_taking_curve(self) -> dict[str, Any] | None:
        """Turn-taking precision and user-end recall at every margin of
        :data:`CURVE_MARGINS`: ``{"margins", "precision", "user_end_recall", "predicted_end",
        "correct_end", "user_end_total"}`` (lists, one entry per margin; a precision is None
        where nothing is predicted). None when some listening positions were scored without
        logits (:meth:`update_predictions`) or none were scored: the curve would not describe
        the same positions as the metrics."""
        listening = (self.counts["listen_accuracy_total"]
                     + self.counts["user_end_recall_total"])
        if not listening or self.curve_positions != listening:
            return None
        total_end = self.counts["user_end_recall_total"]
        said = self.curve_end + self.curve_listen
        return {
            "margins": list(CURVE_MARGINS),
            "precision": [int(c) / int(n) if n else None for c, n in zip(self.curve_end, said)],
            "user_end_recall": [int(c) / total_end if total_end else None
                                for c in self.curve_end],
            "predicted_end": [int(n) for n in said],
            "correct_end": [int(c) for c in self.curve_end],
            "user_end_total": total_end,
        }

    def result(self) -> dict[str, dict[str, Any]]:
        """Every metric so far: ``{"decision_accuracy": {"value", "correct", "total"}, ...,
        "model_bpb": {"value", "bits", "bytes", "tokens"}}``; value None on an empty
        denominator (and bits per byte None without nll or ``byte_lengths``)."""
        out: dict[str, dict[str, Any]] = {
            name: ratio(self.counts[f"{name}_correct"], self.counts[f"{name}_total"])
            for name in ACCURACY_METRICS
        }
        bits = self.model_nats / math.log(2) if self._with_nll else None
        n_bytes = self.model_bytes if self.byte_lengths is not None else None
        out["model_bpb"] = {
            "value": bits / n_bytes if bits is not None and n_bytes else None,
            "bits": bits,
            "bytes": n_bytes,
            "tokens": self.model_tokens,
        }
        return out


def answer_contains(answer: str, value: str) -> bool:
    """Whether ``value`` occurs in ``answer`` as a whole word or phrase, ignoring case.

    Neither end of the match may touch a word character ("red" is not in "reddish"), and
    any run of whitespace in ``value`` matches any run in ``answer`` ("New York" is in
    "it's new\\nyork."). Values that start or end with punctuation ("$5", "C++") work too.

    Raises:
        ValueError: ``value`` is empty or only whitespace (every answer would contain it).
    """
    words = value.split()
    if not words:
        raise ValueError(f"a probe value must have text; got {value!r}")
    pattern = r"(?<!\w)" + r"\s+".join(re.escape(w) for w in words) + r"(?!\w)"
    return re.search(pattern, answer, flags=re.IGNORECASE) is not None


def memory_recall(answers: Sequence[str], probes: Sequence[Probe]) -> dict[str, dict[str, Any]]:
    """Memory recall of greedy answers, one answer per probe, in the same order.

    Returns:
        ``{"memory_recall": ..., "memory_recall_updated": ...,
        "memory_recall_untouched": ...}``, each ``{"value", "correct", "total"}``.
    """
    if len(answers) != len(probes):
        raise ValueError(f"{len(answers)} answers for {len(probes)} probes; give one each")
    correct = dict.fromkeys(PROBE_KINDS, 0)
    total = dict.fromkeys(PROBE_KINDS, 0)
    for answer, probe in zip(answers, probes):
        total[probe.kind] += 1
        correct[probe.kind] += answer_contains(answer, probe.answer)
    out = {"memory_recall": ratio(sum(correct.values()), sum(total.values()))}
    for kind in PROBE_KINDS:
        out[f"memory_recall_{kind}"] = ratio(correct[kind], total[kind])
    return out


def write_metrics_json(path: str | os.PathLike[str], metrics: Mapping[str, Any],
                       provenance: Mapping[str, Any] | None = None) -> Path:
    """Write ``{"suite", "metrics", "provenance", "seed_reported", "goals"}`` as JSON,
    atomically (``suite`` is "duplex-eval", for ``assoclm.bench.report``).

    Raises:
        ValueError: a value is NaN or infinite (not valid JSON; an empty metric is None).
    """
    payload = {
        "suite": "duplex-eval",
        "metrics": dict(metrics),
        "provenance": dict(provenance or {}),
        "seed_reported": SEED_REPORTED,
        "goals": GOALS,
    }
    return write_json_atomic(path, payload, allow_nan=False)


def _value_cell(entry: Mapping[str, Any]) -> str:
    value = entry.get("value")
    if value is None:
        return "n/a"
    if "correct" in entry:
        return f"{100 * value:.2f}"
    return f"{value:.4f} bits/byte"


def _count_cell(entry: Mapping[str, Any]) -> str:
    if "correct" in entry:
        return f"{entry['correct']}/{entry['total']}"
    return f"{entry.get('tokens', 0)} tokens, {entry.get('bytes') or 0} bytes"


def _metric_entries(metrics: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``(name, entry)`` for every entry with a "value", looking one level into groups
    (``{"protocol": ProtocolMetrics.result(), "memory_recall": memory_recall(...)}``)."""
    entries = []
    for name, entry in metrics.items():
        if not isinstance(entry, Mapping):
            continue
        if "value" in entry:
            entries.append((name, entry))
        else:
            entries += [(inner, sub) for inner, sub in entry.items()
                        if isinstance(sub, Mapping) and "value" in sub]
    return entries


def format_table(metrics: Mapping[str, Any], compare: bool = False) -> str:
    """A markdown table, ``metric | value (%) | count``, of every metric in ``metrics``.

    ``metrics`` maps names to metric entries (as :meth:`ProtocolMetrics.result` and
    :func:`memory_recall` return them), or to groups of them; anything else is skipped.
    Accuracies are shown in percent with ``correct/total``; bits per byte as is, with its
    token and byte counts. With ``compare``, two more columns hold the seed's published
    figure and the goal, where there is one.
    """
    header = ["metric", "value (%)", "count"]
    if compare:
        header += ["seed (%)", "goal (%)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, entry in _metric_entries(metrics):
        row = [name, _value_cell(entry), _count_cell(entry)]
        if compare:
            row += [f"{100 * table[name]:.1f}" if name in table else ""
                    for table in (SEED_REPORTED, GOALS)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def format_source_table(by_source: Mapping[str, Mapping[str, Any]]) -> str:
    """A markdown table of the protocol metrics per dialogue source: one row per metric
    (accuracies in percent, bits per byte as is), one column per source, "n/a" where a
    source has no case of a metric."""
    sources = sorted(by_source)
    lines = ["| metric | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
    for name in (*ACCURACY_METRICS, "model_bpb"):
        cells = [_value_cell(by_source[source].get(name, {})) for source in sources]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def margin_for_precision(curve: Mapping[str, Any], precision: float
                         ) -> tuple[float, float, float] | None:
    """The smallest tabulated margin at which turn-taking precision reaches ``precision``
    (a fraction), as ``(margin, precision there, user-end recall there)``; None if no margin
    of the curve reaches it."""
    for margin, p, r in zip(curve["margins"], curve["precision"], curve["user_end_recall"]):
        if p is not None and p >= precision:
            return margin, p, r
    return None


def goal_margin_line(curve: Mapping[str, Any]) -> str:
    """One sentence: the first margin of ``curve`` whose precision reaches the goal, and the
    user-end recall there (or that none does)."""
    goal = GOALS["turn_taking_precision"]
    reached = margin_for_precision(curve, goal)
    if reached is None:
        return f"No margin up to {curve['margins'][-1]:g} reaches {100 * goal:.0f} % precision."
    return (f"Precision reaches {100 * goal:.0f} % first at margin {reached[0]:g}, where "
            f"user-end recall is {100 * reached[2]:.1f} %.")


# Margins shown by format_curve_table: enough to see the trade-off without 49 rows.
SHOWN_MARGINS: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0)


def format_curve_table(curves: Mapping[str, Mapping[str, Any] | None],
                       margins: Sequence[float] = SHOWN_MARGINS) -> str:
    """A markdown table of the turn-taking trade-off: one row per margin, one column per
    curve (e.g. "all" and each dialogue source) holding ``precision / user-end recall`` in
    percent; curves that are None are left out."""
    names = [name for name, curve in curves.items() if curve is not None]
    lines = ["| margin (nats) | " + " | ".join(f"{n}: precision / recall" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for margin in margins:
        cells = []
        for name in names:
            curve = curves[name]
            if margin not in curve["margins"]:
                raise ValueError(f"margin {margin} is not tabulated; the curve has "
                                 f"{curve['margins'][0]} to {curve['margins'][-1]}")
            i = curve["margins"].index(margin)
            p, r = curve["precision"][i], curve["user_end_recall"][i]
            cells.append(("n/a" if p is None else f"{100 * p:.1f}") + " / "
                         + ("n/a" if r is None else f"{100 * r:.1f}"))
        lines.append(f"| {margin:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_turn_taking_curves(curves: Mapping[str, Mapping[str, Any] | None], path: str | Path,
                            end_margin: float | None = None, title: str = "") -> Path:
    """Precision against user-end recall as the margin grows, one line per curve, with the
    point nearest ``end_margin`` marked and the 99 % precision goal dashed. Written
    atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for name, curve in curves.items():
        if curve is None:
            continue
        points = [(100 * r, 100 * p) for p, r in zip(curve["precision"], curve["user_end_recall"])
                  if p is not None and r is not None]
        if not points:
            continue
        line, = ax.plot(*zip(*points), marker=".", ms=3, lw=1.2, label=name)
        if end_margin is not None:
            i = min(range(len(curve["margins"])),
                    key=lambda j: abs(curve["margins"][j] - end_margin))
            p, r = curve["precision"][i], curve["user_end_recall"][i]
            if p is not None and r is not None:
                ax.plot([100 * r], [100 * p], "o", color=line.get_color(), ms=7, mfc="none")
    ax.axhline(100 * GOALS["turn_taking_precision"], color="k", ls="--", lw=0.8)
    ax.set_xlabel("user-end recall (%)")
    ax.set_ylabel("turn-taking precision (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    marked = "" if end_margin is None else f"; circles: margin {end_margin:.2f}"
    ax.set_title((title + "\n" if title else "") + "margin from "
                 f"{CURVE_MARGINS[0]:g} to {CURVE_MARGINS[-1]:g} nats (dashed: goal{marked})",
                 fontsize=9)
    fig.tight_layout()
    out = save_figure_atomic(fig, path)
    plt.close(fig)
    return out
