"""Associative recall: MQAR and fact update for propagator, hebbian and transformer.

    assoclm bench recall                 # the full suite (CPU: tens of minutes)
    assoclm bench recall --quick         # tiny models and sequences (seconds)

Every model is trained from scratch on each task with the same budget (steps × batch) and
scored on held-out examples by greedy accuracy at the queried positions:

- **MQAR** (Arora et al. 2023, Zoology): for each (sequence length N, key-value pairs D) and
  each width d, the three models at equal parameters (``models.sizing.matched_configs``).
  Target: propagator ≥ 99 % at N = 256, D = 16, d = 128, 2 layers.
- **Fact update**: facts written, some overwritten with new values, then every key asked;
  accuracy separately on overwritten and untouched keys. Target: propagator ≥ 99 % on the
  overwritten keys, where additive (hebbian) writes return a mix of old and new values.

Writes a JSON result (``--out``) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from assoclm.bench.common import apply_quick, int_list, name_list, require_positive, write_result
from assoclm.bench.render import listed_targets, machine_line, pct, with_targets
from assoclm.data.synthetic import fact_update, mixture, mqar
from assoclm.io import provenance, save_figure_atomic
from assoclm.models import build_model
from assoclm.models.sizing import count_parameters, matched_configs
from assoclm.train.synthetic import fit

DEFAULT_OUT = "benchmarks/results/recall-cpu.json"
MODELS = ("propagator", "hebbian", "transformer")
# The MQAR target and where it is measured.
TARGET = {"model": "propagator", "seq_len": 256, "num_kv_pairs": 16, "width": 128,
          "accuracy": 0.99}
FACT_TARGET = 0.99
# Recall needs strong, lasting writes: β up to 1 (one write stores a pair) and no forgetting
# within an example. The text presets use 0.1 / 0.02.
RECALL_PROPAGATOR = {"write_rate": 1.0, "forget_rate": 0.0, "mlp_multiplier": 2.0}


def _pairs(text: str) -> list[tuple[int, int]]:
    """'256x16,128x8' -> [(256, 16), (128, 8)]."""
    out = []
    for part in text.split(","):
        n, _, d = part.strip().partition("x")
        if not (n.isdigit() and d.isdigit()):
            raise argparse.ArgumentTypeError(
                f"bad setting {part!r}: write SEQ_LENxPAIRS, e.g. 256x16,128x8")
        out.append((int(n), int(d)))
    return out


def _facts(text: str) -> list[int]:
    """argparse type for --facts: 'FACTS,UPDATES', or 'none' (skip the fact-update task)."""
    return [] if text.strip().lower() == "none" else int_list(text)


def _mqar_train_set(args: argparse.Namespace, seq_len: int, pairs: int):
    """MQAR training examples for the setting (seq_len, pairs): that setting alone, or with
    ``--mqar-train-mix`` an equal share of it and of each mix setting that fits in seq_len
    (Zoology's mixed training). Returns (task, [[seq_len, pairs], ...] trained on)."""
    settings = [(seq_len, pairs)] + [(n, d) for n, d in args.mqar_train_mix
                                     if n <= seq_len and (n, d) != (seq_len, pairs)]
    if len(settings) == 1:
        task = mqar(args.train_examples, seq_len, pairs, args.vocab_size, seed=args.seed)
        return task, [[seq_len, pairs]]
    share = max(1, args.train_examples // len(settings))
    # seeds offset per setting (and away from the test set's seed + 1)
    tasks = [mqar(share, n, d, args.vocab_size, seed=args.seed + 1000 * (i + 1))
             for i, (n, d) in enumerate(settings)]
    return mixture(tasks, seq_len, seed=args.seed), [list(s) for s in settings]


def _memory_settings(args: argparse.Namespace) -> dict:
    return {**RECALL_PROPAGATOR, "conv_size": args.conv_size}


def _fit_one(name: str, config: dict, train, test, args, label: str) -> dict:
    torch.manual_seed(args.seed)
    model = build_model(name, config)
    result = fit(model, train, test, steps=args.steps, batch_size=args.batch, lr=args.lr,
                 warmup_steps=min(args.warmup, args.steps), eval_every=args.eval_every,
                 stop_at=args.stop_at, seed=args.seed, device=args.device,
                 progress=args.progress, label=label)
    row = {"model": name, "parameters": count_parameters(name, config), "config": config,
           "accuracy": result.accuracy, "steps": result.steps,
           "examples_seen": result.examples_seen, "stopped_early": result.stopped_early,
           "elapsed_s": result.elapsed_s, "history": result.history}
    row.update({f"accuracy_{k}": v for k, v in result.group_accuracy.items()})
    return row


def plan(args: argparse.Namespace) -> tuple[dict, dict]:
    """Every task setting and model config of the run, checked before any training starts,
    so that a bad setting fails at once rather than after an hour of fits.

    Returns ({(seq_len, pairs, width): configs}, fact-update configs or {}).
    """
    mqar_configs = {}
    for seq_len, pairs in args.mqar_train_mix:
        mqar(1, seq_len, pairs, args.vocab_size, seed=args.seed)  # raises on a bad setting
    for seq_len, pairs in args.mqar:
        mqar(1, seq_len, pairs, args.vocab_size, seed=args.seed)  # raises on a bad setting
        for width in args.widths:
            mqar_configs[(seq_len, pairs, width)] = matched_configs(
                width, args.layers, args.vocab_size, seq_len, models=tuple(args.models),
                **_memory_settings(args))
    fact_configs = {}
    if args.facts:
        facts, updates = args.facts
        probe = fact_update(1, num_facts=facts, num_updates=updates,
                            vocab_size=args.vocab_size, num_filler=args.fact_filler)
        fact_configs = matched_configs(args.fact_width, args.layers, args.vocab_size,
                                       probe.inputs.shape[1], models=tuple(args.models),
                                       **_memory_settings(args))
    return mqar_configs, fact_configs


def run(args: argparse.Namespace, argv: list[str]) -> dict:
    # taken first: the commit the run started from, before anything else changes
    prov = provenance("assoclm.cli", ["bench", "recall", *argv], args.device)
    mqar_configs, fact_configs = plan(args)
    log = print if args.verbose else (lambda *a, **k: None)
    rows, fact_rows = [], []
    start = time.perf_counter()
    for seq_len, pairs in args.mqar:
        train, train_settings = _mqar_train_set(args, seq_len, pairs)
        test = mqar(args.test_examples, seq_len, pairs, args.vocab_size, seed=args.seed + 1)
        for width in args.widths:
            for name, config in mqar_configs[(seq_len, pairs, width)].items():
                label = f"mqar N={seq_len} D={pairs} d={width} {name}"
                row = _fit_one(name, config, train, test, args, label)
                row.update({"task": "mqar", "seq_len": seq_len, "num_kv_pairs": pairs,
                            "width": width, "train_settings": train_settings})
                rows.append(row)
                log(f"{label}: accuracy {row['accuracy']:.4f} after {row['steps']} steps "
                    f"({row['parameters']:,} parameters, {row['elapsed_s']:.0f}s)")
    if args.facts:
        facts, updates = args.facts
        kw = dict(num_facts=facts, num_updates=updates, vocab_size=args.vocab_size,
                  num_filler=args.fact_filler)
        train = fact_update(args.train_examples, seed=args.seed, **kw)
        test = fact_update(args.test_examples, seed=args.seed + 1, **kw)
        for name, config in fact_configs.items():
            label = f"fact update {facts} facts, {updates} updates, d={args.fact_width} {name}"
            row = _fit_one(name, config, train, test, args, label)
            row.update({"task": "fact_update", "num_facts": facts, "num_updates": updates,
                        "num_filler": args.fact_filler, "seq_len": train.inputs.shape[1],
                        "width": args.fact_width})
            fact_rows.append(row)
            log(f"{label}: overwritten {row.get('accuracy_overwritten', float('nan')):.4f}, "
                f"untouched {row.get('accuracy_untouched', float('nan')):.4f}")
    return {
        "suite": "recall",
        "provenance": prov,
        "config": {k: v for k, v in vars(args).items() if k not in ("verbose", "progress")},
        "mqar": rows,
        "fact_update": fact_rows,
        "targets": [] if args.quick else targets(rows, fact_rows),
        "elapsed_s": time.perf_counter() - start,
    }


def targets(rows: list[dict], fact_rows: list[dict]) -> list[dict]:
    """The targets with the measured numbers (only those this run measured)."""
    out = []
    name = (f"propagator MQAR accuracy at N={TARGET['seq_len']}, D={TARGET['num_kv_pairs']}, "
            f"d={TARGET['width']}")
    hits = [r for r in rows
            if all(r.get(k) == TARGET[k] for k in ("model", "seq_len", "num_kv_pairs", "width"))]
    for r in hits:
        out.append({"name": name, "goal": f">= {TARGET['accuracy']}", "measured": r["accuracy"],
                    "met": r["accuracy"] >= TARGET["accuracy"]})
    if rows and not hits:  # say so, rather than leave the target out
        out.append({"name": name, "goal": f">= {TARGET['accuracy']}",
                    "measured": "not run with these settings", "met": False})
    for r in fact_rows:
        if r["model"] == "propagator" and "accuracy_overwritten" in r:
            out.append({"name": "propagator fact-update accuracy on overwritten keys",
                        "goal": f">= {FACT_TARGET}", "measured": r["accuracy_overwritten"],
                        "met": r["accuracy_overwritten"] >= FACT_TARGET})
    return out


def render(result: dict) -> str:
    """Markdown: the MQAR grid (accuracy, parameters, steps per model), the fact-update
    table, how the models were trained and scored, and the targets."""
    models = [m for m in MODELS
              if any(r["model"] == m for r in result["mqar"] + result["fact_update"])]
    lines = []
    if result["mqar"]:
        lines += ["| MQAR (N, D) | width d | " + " | ".join(models) + " |",
                  "|---|---|" + "---|" * len(models)]
        keys = sorted({(r["seq_len"], r["num_kv_pairs"], r["width"]) for r in result["mqar"]})
        for n, d, w in keys:
            cells = []
            for m in models:
                row = next((r for r in result["mqar"] if r["model"] == m and
                            (r["seq_len"], r["num_kv_pairs"], r["width"]) == (n, d, w)), None)
                cells.append("–" if row is None else
                             f"{pct(row['accuracy'])} ({row['parameters'] / 1e3:.0f}k, "
                             f"{row['steps']} steps)")
            lines.append(f"| ({n}, {d}) | {w} | " + " | ".join(cells) + " |")
        lines.append("")
    if result["fact_update"]:
        r0 = result["fact_update"][0]
        lines += [f"Fact update ({r0['num_facts']} facts, {r0['num_updates']} overwritten, "
                  f"{r0['num_filler']} filler tokens, width {r0['width']}):", "",
                  "| model | overwritten keys | untouched keys | steps |", "|---|---|---|---|"]
        for r in result["fact_update"]:
            lines.append(f"| {r['model']} | {pct(r['accuracy_overwritten'])} | "
                         f"{pct(r['accuracy_untouched'])} | {r['steps']} |")
        lines.append("")
    cfg = result["config"]
    conv = (f", propagator and hebbian with a short convolution of size {cfg['conv_size']} "
            "before q, k, v" if cfg["conv_size"] else "")
    lines.append(f"Greedy accuracy on {cfg['test_examples']:,} held-out examples after at most "
                 f"{cfg['steps']:,} steps of {cfg['batch']} examples (stopping early at "
                 f"{cfg['stop_at']}), {cfg['layers']} layers, vocabulary {cfg['vocab_size']}"
                 f"{conv}{train_mix_phrase(result)}; cells show accuracy (parameters, steps). "
                 f"{machine_line(result['provenance'])}.")
    grown = [r for r in result["mqar"] if len(r["history"]) > 1]
    if len(grown) == 1:  # a single fit: show how its accuracy grew
        lines += ["", "Held-out accuracy during training: " + ", ".join(
            f"{pct(h['accuracy'])} at step {h['step']:,}" for h in grown[0]["history"])
            + "."]
    return with_targets(lines, result["targets"])


def train_mix_phrase(result: dict) -> str:
    """", trained on an equal share of ... (Zoology's mixed training)" when the MQAR rows were
    trained on a mix of settings (``--mqar-train-mix``), else ""."""
    mixed = {tuple(map(tuple, r["train_settings"])) for r in result["mqar"]
             if len(r["train_settings"]) > 1}
    if not mixed:
        return ""
    extra = sorted({s for settings in mixed for s in settings[1:]})
    return (", trained on an equal share of examples of its own setting and of "
            + ", ".join(f"({n}, {d})" for n, d in extra) + " (Zoology's mixed training)")


# the targets the run judged, as it wrote them
stated_targets = listed_targets


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = sorted({(r["seq_len"], r["num_kv_pairs"]) for r in result["mqar"]})
    panels = len(settings) + (1 if result["fact_update"] else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(4.2 * max(panels, 1), 3.4),
                             squeeze=False)
    axes = axes[0]
    for ax, (n, d) in zip(axes, settings):
        for name in MODELS:
            pts = sorted((r["width"], r["accuracy"]) for r in result["mqar"]
                         if r["model"] == name and (r["seq_len"], r["num_kv_pairs"]) == (n, d))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("model width d")
        ax.set_ylabel("MQAR accuracy")
        ax.set_title(f"MQAR N={n}, D={d}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if result["fact_update"]:
        ax = axes[-1]
        rows = result["fact_update"]
        xs = range(len(rows))
        for offset, group in ((-0.2, "overwritten"), (0.2, "untouched")):
            vals = [r[f"accuracy_{group}"] for r in rows]
            bars = ax.bar([x + offset for x in xs], vals, width=0.4, label=group)
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], fontsize=7)
        ax.set_xticks(list(xs), [r["model"] for r in rows])
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("accuracy")
        r0 = rows[0]
        ax.set_title(f"fact update: {r0['num_facts']} facts, {r0['num_updates']} overwritten",
                     fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"assoclm bench recall @ {result['provenance']['git_commit'][:12]}",
                 fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="assoclm bench recall", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=name_list(MODELS), default=list(MODELS),
                   help="comma list (default propagator,hebbian,transformer)")
    p.add_argument("--widths", type=int_list, default=[64, 128, 256], help="default 64,128,256")
    p.add_argument("--mqar", type=_pairs, default=[(256, 16), (128, 8)],
                   help="SEQ_LENxPAIRS settings (default 256x16,128x8)")
    p.add_argument("--mqar-train-mix", type=_pairs, default=[],
                   help="also train each MQAR setting on these SEQ_LENxPAIRS settings (those "
                        "that fit), an equal share of examples each, as Zoology does; "
                        "e.g. 64x4,128x8 (default: none)")
    p.add_argument("--facts", type=_facts, default=[16, 8],
                   help="fact update: FACTS,UPDATES (default 16,8), or 'none' to skip it")
    p.add_argument("--fact-filler", type=int, default=32, help="filler tokens (default 32)")
    p.add_argument("--fact-width", type=int, default=128, help="default 128")
    p.add_argument("--vocab-size", type=int, default=512, help="default 512 (> seq len)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--conv-size", type=int, default=0,
                   help="propagator/hebbian: short convolution before q, k, v (0: none)")
    p.add_argument("--steps", type=int, default=3000, help="max training steps per model")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--stop-at", type=float, default=0.995,
                   help="stop a model's training once its test accuracy reaches this")
    p.add_argument("--train-examples", type=int, default=20000)
    p.add_argument("--test-examples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="tiny models and sequences (seconds)")
    p.add_argument("--out", default=DEFAULT_OUT, help="JSON path; the PNG goes beside it")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--verbose", action=argparse.BooleanOptionalAction, default=True)
    return p


def main(argv: list[str] | None = None) -> dict:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick(args, argv, widths=[32], mqar=[(32, 4)], facts=[4, 2], fact_filler=4,
                    fact_width=32, vocab_size=64, steps=20, batch=16, eval_every=10, warmup=5,
                    train_examples=256, test_examples=32)
    require_positive(parser, args, ("steps", "batch", "eval_every", "train_examples",
                                    "test_examples", "layers", "vocab_size", "fact_width"))
    if args.facts and len(args.facts) != 2:
        parser.error("--facts takes FACTS,UPDATES (two integers)")
    try:
        result = run(args, argv)
    except ValueError as exc:  # e.g. a setting the task generator refuses
        parser.error(str(exc))
    write_result(result, args.out, None if args.no_plot else plot)
    return result


if __name__ == "__main__":
    main()
