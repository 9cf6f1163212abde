"""Pieces every result renderer shares: provenance lines, percentages, target lines.

A renderer turns one result file (a dict) into Markdown for the pages that
``assoclm bench report`` keeps up to date. These helpers keep the wording of what every
section repeats (where and how a number was measured, which targets it meets) the same in
all of them.
"""

from __future__ import annotations


def commit(prov: dict) -> str:
    """The run's commit as a short hash in backticks, and a word when the work tree had
    uncommitted changes when the run started (``git_commit`` ending in ``-dirty``)."""
    git_commit = prov["git_commit"]
    dirty = " (with uncommitted changes)" if git_commit.endswith("-dirty") else ""
    return f"`{git_commit[:12]}`{dirty}"


def machine_line(prov: dict) -> str:
    """Where and how a result was measured, from its provenance: device (the GPU's name, or
    the CPU and its torch thread count), torch version, commit and the command that
    reproduces it. No final full stop, so that callers can end the sentence."""
    m = prov["machine"]
    threads = m["torch_threads"]
    where = m.get("gpu") or f"{m['cpu']}, {threads} thread{'' if threads == 1 else 's'}"
    return (f"{m['device']} ({where}), torch {m['torch']}, commit {commit(prov)}. "
            f"Command: `{prov['command']}`")


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal, e.g. 0.9876 -> "98.8%"; None (no case
    was scored) -> "n/a"."""
    return "n/a" if x is None else f"{100 * x:.1f}%"


def shown(target: dict) -> str:
    """A target's measured value as text: a signed percentage when its goal is one
    (``"<= +3%"``), three decimals for other numbers, and as is when it is a word."""
    m = target["measured"]
    if not isinstance(m, float):
        return str(m)
    return f"{m:+.1%}" if "%" in target["goal"] else f"{m:.3f}"


def targets_lines(targets: list[dict]) -> list[str]:
    """One Markdown bullet per target row (``{name, goal, measured, met}``), saying whether
    the measured number meets the goal."""
    return [f"- {t['name']}: goal {t['goal']}, measured **{shown(t)}**: "
            + ("met." if t["met"] else "**not met**.") for t in targets]


def listed_targets(result: dict) -> list[dict]:
    """The ``{name, goal, measured, met}`` rows a result keeps under ``"targets"`` (empty for
    a --quick run): the ``stated_targets`` of every suite that judges its own targets."""
    return result["targets"]


def with_targets(lines: list[str], targets: list[dict]) -> str:
    """``lines`` joined into a section, followed by the target bullets when there are any."""
    if targets:
        lines = [*lines, "", *targets_lines(targets)]
    return "\n".join(lines) + "\n"


def decision_rule_line(end_margin: float | None) -> str:
    """How a duplex evaluation scored its listening positions. ``end_margin`` is the margin
    of the turn-taking rule in nats; None records a run scored by the earlier rule, the
    argmax over the whole vocabulary with no margin."""
    if end_margin is None:
        return ("Scored with the earlier rule: at listening positions the argmax over the whole "
                "vocabulary, no margin.")
    return (f"Turn-taking rule: `[USER_END]` when its logit beats `[LISTEN]` by more than "
            f"{end_margin:.2f} nats.")
