"""The headline table of the README: the main results, one row each, drawn from several files.

``<!-- results:headline -->`` in a page renders :func:`render_headline`. Every row reads
its number from one result file in benchmarks/results and links to that file and to the
section that gives the details. Links are relative to the repository root (the README).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assoclm.bench.render import pct


@dataclass(frozen=True)
class Headline:
    """One row: ``label`` measured by ``measured(result)`` from result file ``file``, with
    the details at ``doc`` (a page path and anchor, or an anchor of the README itself)."""

    label: str
    file: str
    measured: Callable[[dict], str]
    doc: str
    doc_title: str


def duplex_decision(result: dict) -> str:
    """Held-out decision and listen accuracy of a duplex evaluation."""
    protocol = result["metrics"]["protocol"]
    return (f"{pct(protocol['decision_accuracy']['value'])} / "
            f"{pct(protocol['listen_accuracy']['value'])}")


def duplex_turn_taking(result: dict) -> str:
    """Turn-taking precision of a duplex evaluation, and the user-end recall beside it."""
    protocol = result["metrics"]["protocol"]
    return (f"{pct(protocol['turn_taking_precision']['value'])} (user-end recall "
            f"{pct(protocol['user_end_recall']['value'])})")


def duplex_recall_updated(result: dict) -> str:
    """Recall of updated facts in a duplex evaluation, with its count."""
    entry = result["metrics"]["memory_recall"]["memory_recall_updated"]
    return f"{pct(entry['value'])} ({entry['correct']}/{entry['total']})"


def train_run_bpb(result: dict) -> str:
    """Held-out bits per byte of a training run, and what was trained for how long."""
    return (f"{result['val_bpb']:.3f} ({result['parameters'] / 1e6:.2f}M-parameter "
            f"{result['model']}, {result['tokens']:,} tokens in {result['elapsed_s']:.0f} s)")


def lm_gap(result: dict) -> str:
    """Propagator against transformer held-out bits per byte in an lm result."""
    bpb = {r["model"]: r["val_bpb"] for r in result["rows"]}
    p, t = bpb["propagator"], bpb["transformer"]
    return f"{p:.4f} vs {t:.4f} ({p / t - 1:+.1%})"


def mqar_accuracy(result: dict) -> str:
    """The Propagator's MQAR accuracy at the hardest setting a recall result measured."""
    rows = [r for r in result["mqar"] if r["model"] == "propagator"]
    row = max(rows, key=lambda r: (r["seq_len"], r["num_kv_pairs"], r["width"]))
    return (f"{pct(row['accuracy'])} at N = {row['seq_len']}, D = {row['num_kv_pairs']}, "
            f"d = {row['width']} ({row['steps']:,} steps)")


def decode_longest(result: dict) -> str:
    """The Propagator's cost per token and state at the longest context of a decode result,
    against the transformer's KV cache there."""
    longest = max(result["config"]["contexts"])
    latency = next(r for r in result["latency"]
                   if r["model"] == "propagator" and r["context"] == longest)
    memory = next(m for m in result["memory"] if m["context"] == longest)
    computed = "" if memory["transformer_kv_measured"] else " (computed)"
    return (f"{1e3 * latency['seconds_per_token']:.2f} ms/token at {longest:,} tokens of "
            f"context; state {memory['propagator_state_bytes'] / 2**10:,.0f} KiB vs the "
            f"Transformer's {memory['transformer_kv_bytes'] / 2**20:,.1f} MiB KV "
            f"cache{computed}")


def ops_speedup(result: dict) -> str:
    """The chunked op's speed-up over the per-token loop, and its ceiling, at the sequence
    length its targets are stated for."""
    length = result["targets"]["at"]["T"]
    row = next(r for r in result["rows"] if r["T"] == length)
    return (f"{row['speedup_vs_recurrent']:.1f}× at T = {length:,} (ceiling "
            f"{row['ceiling_vs_recurrent']:.1f}×)")


def train_speedup(result: dict) -> str:
    """Tokens/s of parallel over per-token memory writes in one training step."""
    cfg = result["config"]
    return (f"{result['ratio_input_over_output']:.1f}× tokens/s (`{cfg['preset']}` model, "
            f"T = {cfg['seq_len']})")


def eam_sort(result: dict) -> str:
    """EAM's held-out sequence accuracy on sort, and its training time."""
    sort = result["sort"]
    return (f"{pct(sort['sequence_accuracy'])} sequence accuracy, length "
            f"{result['config']['run']['length']}, trained in {sort['elapsed_s']:.0f} s")


def positronic_gap(result: dict) -> str:
    """Positronic against transformer held-out bits per byte."""
    bpb = {r["model"]: r["val_bpb"] for r in result["rows"]}
    return (f"{result['bpb_relative_to_transformer']:+.1%} ({bpb['positronic']:.4f} vs "
            f"{bpb['transformer']:.4f})")


HEADLINES: tuple[Headline, ...] = (
    Headline("Duplex demo: held-out decision / listen accuracy", "demo-duplex-cpu.json",
             duplex_decision, "docs/RESULTS.md#the-demo-run-make-demo", "the demo run"),
    Headline("Duplex demo: turn-taking precision", "demo-duplex-cpu.json",
             duplex_turn_taking, "docs/RESULTS.md#the-demo-run-make-demo", "the demo run"),
    Headline("Duplex demo: recall of updated facts", "demo-duplex-cpu.json",
             duplex_recall_updated, "docs/RESULTS.md#the-demo-run-make-demo", "the demo run"),
    Headline("Text demo: held-out bits per byte", "demo-cpu.json", train_run_bpb,
             "docs/RESULTS.md#the-text-demo-make-demo-lm", "the text demo"),
    Headline("Propagator vs Transformer, equal parameters and tokens: held-out bits per byte",
             "lm-cpu.json", lm_gap,
             "docs/RESULTS.md#language-modelling-at-equal-parameters-and-tokens",
             "language modelling"),
    Headline("MQAR recall (Propagator)", "recall-target-4000-cpu.json", mqar_accuracy,
             "docs/RESULTS.md#the-target-setting-n--256-d--16-d--128", "associative recall"),
    Headline("Decoding at the longest context (Propagator)", "decode-cpu.json",
             decode_longest, "docs/RESULTS.md#decoding-latency-memory-time-to-first-token",
             "decoding"),
    Headline("Delta-rule op, forward + backward: chunked vs per-token loop", "ops-cpu.json",
             ops_speedup, "docs/RESULTS.md#the-delta-rule-op", "the delta-rule op"),
    Headline("Training step: parallel vs per-token memory writes", "train-cpu.json",
             train_speedup, "docs/RESULTS.md#training-step-parallel-vs-per-token-writes",
             "training step"),
    Headline("EAM: sort, decoded in parallel", "eam-cpu.json", eam_sort,
             "docs/EAM.md#targets-sort-within-10-minutes-memory-flat-in-solver-depth",
             "EAM targets"),
    Headline("Positronic vs Transformer: held-out bits per byte", "positronic-cpu.json",
             positronic_gap, "docs/POSITRONIC.md#ablation-report", "Positronic ablations"),
)


def render_headline(results_dir: Path, headlines: tuple[Headline, ...] = HEADLINES) -> str:
    """One Markdown table, a row per headline: what, the measured number, the result file
    and the section with the details.

    Raises:
        SystemExit: a result file the table reads does not exist.
    """
    lines = ["| result | measured | result file | details |", "|---|---|---|---|"]
    for h in headlines:
        path = results_dir / h.file
        try:
            result = json.loads(path.read_text())
        except FileNotFoundError:
            raise SystemExit(f"results section 'headline': {path} does not exist") from None
        lines.append(f"| {h.label} | {h.measured(result)} | "
                     f"[`{h.file}`](benchmarks/results/{h.file}) | "
                     f"[{h.doc_title}]({h.doc}) |")
    return "\n".join(lines) + "\n"
