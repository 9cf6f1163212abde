"""Renderers of the result files that commands other than the suites write.

- ``train-run``: the ``summary.json`` of ``assoclm train`` (model, data, training speed,
  held-out loss and bits per byte, a sample).
- ``duplex-eval``: the metrics file of ``assoclm eval --task duplex`` (the protocol and
  memory-recall metrics against the seed's figures and the goals, per dialogue source, and
  the turn-taking trade-off as the margin grows).

Both are listed in :data:`assoclm.bench.registry.COMMAND_RESULTS`.
"""

from __future__ import annotations

from pathlib import Path

from assoclm.bench.render import decision_rule_line, machine_line
from assoclm.duplex.metrics import (
    format_curve_table,
    format_source_table,
    format_table,
    goal_margin_line,
)

# Margins of the turn-taking table of a duplex-eval section.
CURVE_MARGINS = (0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)


def render_train_run(result: dict) -> str:
    """A two-column table of a training run's numbers, its provenance and its sample."""
    tc = result["train_config"]
    rows = [
        ("model", f"{result['model']}, {result['parameters'] / 1e6:.2f}M parameters, "
                  f"{result['tokenizer']['kind']} tokenizer ({result['tokenizer']['vocab_size']:,}"
                  " ids)"),
        ("state", result["state"]),
        ("data", f"`{result['data']}`, {tc['batch_size']} lanes × {tc['unroll_len']} tokens "
                 "per step"),
        ("trained", f"{result['steps']:,} steps, {result['tokens']:,} tokens in "
                    f"{result['elapsed_s']:.0f} s"),
        ("training speed", f"{result['tokens_per_s_training_median']:,.0f} tokens/s (median "
                           f"step), {result['tokens_per_s_overall']:,.0f} tokens/s overall "
                           "(evaluations included)"),
        ("held-out loss", f"{result['val_loss']:.3f} nats/token"),
        ("held-out bits per byte", f"{result['val_bpb']:.3f}"),
    ]
    lines = ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    lines.append("")
    lines.append(f"{machine_line(result['provenance'])}.")
    sample = result["sample"]
    if sample:
        lines.append("")
        lines.append(f"Sample (temperature {sample['temperature']}, top-k {sample['top_k']}, "
                     f"top-p {sample['top_p']}, seed {sample['seed']}, "
                     f"{sample['tokens']} tokens):")
        lines.append("")
        lines.append("```text")
        lines.append(sample["prompt"] + sample["text"])
        lines.append("```")
    return "\n".join(lines) + "\n"


def render_duplex_eval(result: dict) -> str:
    """The metrics table (with the seed's figures and the goals), the per-source table and
    the turn-taking trade-off where the evaluation measured them, and how it was scored."""
    metrics = result["metrics"]
    lines = [format_table(metrics, compare=True)]
    if metrics["protocol_by_source"]:
        lines += ["By dialogue source:", "", format_source_table(metrics["protocol_by_source"])]
    curves = metrics["turn_taking_curve"]
    if curves is not None and curves["all"] is not None:
        lines += ["Turn-taking precision / user-end recall (%) as the margin grows:", "",
                  format_curve_table(curves, margins=CURVE_MARGINS),
                  goal_margin_line(curves["all"]), ""]
    lines.append(f"{metrics['dialogues']} held-out dialogues, checkpoint "
                 f"`{Path(metrics['checkpoint']).name}`. "
                 f"{decision_rule_line(metrics['end_margin'])} "
                 f"{machine_line(result['provenance'])}.")
    return "\n".join(lines) + "\n"


def duplex_eval_targets(result: dict) -> list[dict]:
    """A duplex evaluation's goals (``result["goals"]``) with the measured values, for the
    metrics that had cases to score."""
    m = result["metrics"]
    values = {**m["protocol"], **m["memory_recall"]}
    rows = []
    for key, goal in result["goals"].items():
        value = values[key]["value"]
        if value is not None:
            rows.append({"name": f"duplex {key.replace('_', ' ')}", "goal": f">= {goal}",
                         "measured": value, "met": value >= goal})
    return rows


# result kind -> (its renderer, its stated targets)
KINDS = {
    "train-run": (render_train_run, lambda result: []),
    "duplex-eval": (render_duplex_eval, duplex_eval_targets),
}


def render(result: dict) -> str:
    """Markdown of a ``train-run`` or ``duplex-eval`` result file."""
    return KINDS[result["suite"]][0](result)


def stated_targets(result: dict) -> list[dict]:
    """A duplex evaluation's goals with the measured values; a training run states none."""
    return KINDS[result["suite"]][1](result)
