"""The loss curve of a run, drawn from its metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from assoclm.io import save_figure_atomic


class Ema:
    """Exponential moving average with the start-up bias divided out (as in Adam)."""

    def __init__(self, decay: float):
        self.decay, self.total, self.weight = decay, 0.0, 0.0

    def add(self, x: float) -> float:
        self.total = self.decay * self.total + (1 - self.decay) * x
        self.weight = self.decay * self.weight + (1 - self.decay)
        return self.value

    @property
    def value(self) -> float:
        return self.total / self.weight if self.weight else float("nan")


def read_metrics(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(train records, eval records) of a metrics.jsonl."""
    train, evals = [], []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            (evals if record.get("kind") == "eval" else train).append(record)
    return train, evals


def plot_metrics(metrics_path: str | Path, png_path: str | Path, title: str = "") -> Path | None:
    """Training loss (raw and smoothed) and held-out loss against tokens seen, as a PNG.

    Returns the PNG path, or None when there is nothing to plot yet.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_metrics(metrics_path)
    if not train:
        return None
    tokens = [r["tokens"] for r in train]
    losses = [r["loss"] for r in train]
    ema = Ema(0.95)
    smooth = [ema.add(value) for value in losses]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(tokens, losses, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (per step)")
    ax.plot(tokens, smooth, color="tab:blue", linewidth=1.6, label="train (EMA 0.95)")
    if evals:
        ax.plot([r["tokens"] for r in evals], [r["val_loss"] for r in evals], "o-",
                color="tab:orange", label="held-out")
        last = evals[-1]
        ax.annotate(f"{last['val_loss']:.3f} nats, {last['val_bpb']:.3f} bits/byte",
                    (last["tokens"], last["val_loss"]), textcoords="offset points",
                    xytext=(-10, -16), ha="right", color="tab:orange")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    try:
        return save_figure_atomic(fig, png_path)
    finally:
        plt.close(fig)
