"""Render benchmark result files into the README, so that no number there is typed by hand.

    assoclm bench report            # rewrite the marked sections of README.md, docs/RESULTS.md
    assoclm bench report --check    # exit 1 if one of them is stale

A section sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->`, where NAME is a
result file in benchmarks/results/ without `.json`, or `targets`: every target stated by any
result file, with the measured number.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from assoclm.bench.depth import render_depth_dial, render_depth_drift, render_depth_ood

RESULTS_DIR = Path("benchmarks/results")
PAGES = ("README.md", "docs/RESULTS.md", "docs/EAM.md", "docs/POSITRONIC.md")
SECTION = re.compile(
    r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
    re.DOTALL,
)


def render_ops(result: dict) -> str:
    cfg, prov = result["config"], result["provenance"]
    names = list(result["rows"][0]["median_s"])
    # Files from before the products-only case have no ceiling column.
    ceiling = any("ceiling_vs_recurrent" in row for row in result["rows"])
    head = (["T"] + [f"{n} (ms)" for n in names] + ["recurrent / chunked"]
            + ["recurrent / products_only (ceiling)"] * ceiling + ["chunked / fla naive"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        cells = [str(row["T"])] + [f"{1e3 * row['median_s'][n]:.1f}" for n in names]
        for key in ["speedup_vs_recurrent"] + ["ceiling_vs_recurrent"] * ceiling:
            speed = row.get(key)
            cells.append(f"{speed:.1f}×" if speed is not None else "n/a")
        cells.append(f"{row['ratio_vs_fla_naive_chunk']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    machine = prov["machine"]
    lines.append("")
    lines.append(
        f"Forward + backward, median of {cfg['repeats']} interleaved runs; B={cfg['batch']}, "
        f"H={cfg['heads']}, K={cfg['key_dim']}, V={cfg['value_dim']}, C={cfg['chunk_size']}, "
        f"{cfg['dtype']} on {machine['device']} ({machine['cpu']}, {machine['torch_threads']} "
        f"threads), torch {machine['torch']}, commit {_commit(prov)}. "
        f"Command: `{prov['command']}`. Absolute times from this shared machine are "
        "indicative only; the ratios are the result."
    )
    return "\n".join(lines) + "\n"


def _commit(prov: dict) -> str:
    """Short hash, and a word when the work tree had uncommitted changes at the start."""
    commit = prov["git_commit"]
    dirty = " (with uncommitted changes)" if commit.endswith("-dirty") else ""
    return f"`{commit[:12]}`{dirty}"


def _machine_line(prov: dict) -> str:
    m = prov["machine"]
    threads = m["torch_threads"]
    where = m.get("gpu") or f"{m['cpu']}, {threads} thread{'' if threads == 1 else 's'}"
    return (f"{m['device']} ({where}), torch {m['torch']}, commit {_commit(prov)}. "
            f"Command: `{prov['command']}`")


def render_train(result: dict) -> str:
    cfg = result["config"]
    lines = ["| write_from | training step (ms) | tokens/s | vs per-token scan |",
             "|---|---|---|---|"]
    slowest = min(r["tokens_per_s"] for r in result["rows"])
    for row in result["rows"]:
        lines.append(f"| `{row['write_from']}` | {1e3 * row['median_s']:.0f} | "
                     f"{row['tokens_per_s']:,.0f} | {row['tokens_per_s'] / slowest:.1f}× |")
    lines.append("")
    lines.append(
        f"One training step (forward, loss, backward, AdamW) of the `{cfg['preset']}` model, "
        f"B={cfg['batch']}, T={cfg['seq_len']}, {cfg['dtype']}, median of {cfg['repeats']} "
        f"steps taken in turns. {_machine_line(result['provenance'])}."
    )
    return "\n".join(lines) + "\n"


def render_train_run(result: dict) -> str:
    tc = result["train_config"]
    rows = [
        ("model", f"{result['model']}, {result['parameters'] / 1e6:.2f}M parameters, "
                  f"{result['tokenizer']['kind']} tokenizer ({result['tokenizer']['vocab_size']:,}"
                  " ids)"),
        ("state", result.get("state")
         or f"memory state: {result['memory_state_bytes']:,} bytes per sequence, any length"),
        ("data", f"`{result.get('data') or tc['data']}`, {tc['batch_size']} lanes × "
                 f"{tc['unroll_len']} tokens per step"),
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
    lines.append(f"{_machine_line(result['provenance'])}.")
    sample = result.get("sample")
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


def decision_rule_line(end_margin: float | None) -> str:
    """How a duplex result's listening positions were scored (older files carry no margin)."""
    if end_margin is None:
        return ("Scored with the earlier rule: at listening positions the argmax over the whole "
                "vocabulary, no margin.")
    return (f"Turn-taking rule: `[USER_END]` when its logit beats `[LISTEN]` by more than "
            f"{end_margin:.2f} nats.")


def render_duplex_eval(result: dict) -> str:
    from assoclm.duplex.metrics import (
        format_curve_table,
        format_source_table,
        format_table,
        goal_margin_line,
    )

    metrics = result["metrics"]
    lines = [format_table(metrics, compare=True)]
    if metrics.get("protocol_by_source"):
        lines += ["By dialogue source:", "", format_source_table(metrics["protocol_by_source"])]
    curves = metrics.get("turn_taking_curve")  # files from before the curve have none
    if curves and curves.get("all"):
        lines += ["Turn-taking precision / user-end recall (%) as the margin grows:", "",
                  format_curve_table(curves, margins=(0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)),
                  goal_margin_line(curves["all"]), ""]
    lines.append(f"{metrics.get('dialogues', '?')} held-out dialogues, checkpoint "
                 f"`{Path(metrics.get('checkpoint', '?')).name}`. "
                 f"{decision_rule_line(metrics.get('end_margin'))} "
                 f"{_machine_line(result['provenance'])}.")
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _shown(target: dict) -> str:
    """A target's measured value, as a percentage when its goal is one."""
    m = target["measured"]
    if not isinstance(m, float):
        return str(m)
    return f"{m:+.1%}" if "%" in target["goal"] else f"{m:.3f}"


def _targets_lines(result: dict) -> list[str]:
    lines = []
    for t in stated_targets(result):
        shown = _shown(t)
        lines.append(f"- {t['name']}: goal {t['goal']}, measured **{shown}**: "
                     + ("met." if t["met"] else "**not met**."))
    return lines


def render_recall(result: dict) -> str:
    models = [m for m in ("propagator", "hebbian", "transformer")
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
                             f"{_pct(row['accuracy'])} ({row['parameters'] / 1e3:.0f}k, "
                             f"{row['steps']} steps)")
            lines.append(f"| ({n}, {d}) | {w} | " + " | ".join(cells) + " |")
        lines.append("")
    if result["fact_update"]:
        r0 = result["fact_update"][0]
        lines += [f"Fact update ({r0['num_facts']} facts, {r0['num_updates']} overwritten, "
                  f"{r0['num_filler']} filler tokens, width {r0['width']}):", "",
                  "| model | overwritten keys | untouched keys | steps |", "|---|---|---|---|"]
        for r in result["fact_update"]:
            lines.append(f"| {r['model']} | {_pct(r.get('accuracy_overwritten', 0.0))} | "
                         f"{_pct(r.get('accuracy_untouched', 0.0))} | {r['steps']} |")
        lines.append("")
    cfg = result["config"]
    lines.append(f"Greedy accuracy on {cfg['test_examples']:,} held-out examples after at most "
                 f"{cfg['steps']:,} steps of {cfg['batch']} examples (stopping early at "
                 f"{cfg['stop_at']}), {cfg['layers']} layers, vocabulary {cfg['vocab_size']}"
                 + (f", propagator and hebbian with a short convolution of size "
                    f"{cfg['conv_size']} before q, k, v" if cfg.get("conv_size") else "")
                 + _train_mix_phrase(result)
                 + "; "
                 f"cells show accuracy (parameters, steps). {_machine_line(result['provenance'])}.")
    history = [r for r in result["mqar"] if len(r.get("history", [])) > 1]
    if len(history) == 1:  # a single fit: show how its accuracy grew
        lines += ["", "Held-out accuracy during training: " + ", ".join(
            f"{_pct(h['accuracy'])} at step {h['step']:,}" for h in history[0]["history"])
            + "."]
    targets = _targets_lines(result)
    if targets:
        lines += [""] + targets
    return "\n".join(lines) + "\n"


def _train_mix_phrase(result: dict) -> str:
    """", each MQAR setting trained on ... too" when --mqar-train-mix was given, else ""."""
    mixed = {tuple(map(tuple, r["train_settings"])) for r in result["mqar"]
             if len(r.get("train_settings", [])) > 1}
    if not mixed:
        return ""
    extra = sorted({s for settings in mixed for s in settings[1:]})
    return (", trained on an equal share of examples of its own setting and of "
            + ", ".join(f"({n}, {d})" for n, d in extra) + " (Zoology's mixed training)")


def render_lm(result: dict) -> str:
    rows = result["rows"]
    lines = ["| model | parameters | training tokens | held-out bits/byte |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['tokens']:,} | "
                     f"{r['val_bpb']:.4f} |")
    cfg = result["config"]
    lines += ["", f"`{cfg['preset']}` preset of each family on `{cfg['data']}` "
                  f"({cfg['tokenizer']} tokenizer), same tokens and settings; "
                  f"{_machine_line(result['provenance'])}."]
    targets = _targets_lines(result)
    if targets:
        lines += [""] + targets
    return "\n".join(lines) + "\n"


def render_train_speed(result: dict) -> str:
    labels = list(result["config"]["models"])
    lines = ["| T | " + " | ".join(f"{x} tok/s" for x in labels) + " | "
             + " | ".join(f"{x} / transformer" for x in labels if x != "transformer") + " |",
             "|---|" + "---|" * (2 * len(labels) - 1)]
    for r in result["rows"]:
        tps = [f"{r['tokens_per_s'][x]:,.0f}" if x in r["tokens_per_s"] else "–"
               for x in labels]
        ratio = [f"{r['vs_transformer'][x]:.2f}×" if x in r["vs_transformer"] else "–"
                 for x in labels if x != "transformer"]
        lines.append(f"| {r['seq_len']:,} | " + " | ".join(tps + ratio) + " |")
    cfg = result["config"]
    params = ", ".join(f"{k} {v['parameters'] / 1e6:.2f}M" for k, v in cfg["models"].items())
    lines += ["", f"One training step, batch {cfg['batch']}, {cfg['dtype']}, median of "
                  f"{cfg['repeats']} runs taken in turns; parameters: {params}. "
                  f"{_machine_line(result['provenance'])}. Tokens/s from this shared machine "
                  "are indicative; the ratios are the result."]
    return "\n".join(lines) + "\n"


def render_decode(result: dict) -> str:
    at = {(r["model"], r["context"]): r for r in result["latency"]}
    mem = {m["context"]: m for m in result["memory"]}
    lines = ["| context | propagator ms/token | transformer ms/token | transformer / propagator "
             "| propagator state | transformer KV cache |", "|---|---|---|---|---|---|"]
    for L in result["config"]["contexts"]:
        p, t = at.get(("propagator", L)), at.get(("transformer", L))
        ratio = (f"{t['seconds_per_token'] / p['seconds_per_token']:.1f}×" if p and t else "–")
        m = mem[L]
        kv = f"{m['transformer_kv_bytes'] / 2**20:,.1f} MiB" + (
            "" if m["transformer_kv_measured"] else " (computed)")
        p_ms = "–" if p is None else f"{1e3 * p['seconds_per_token']:.2f}"
        t_ms = "–" if t is None else f"{1e3 * t['seconds_per_token']:.2f}"
        lines.append(f"| {L:,} | {p_ms} | {t_ms} | {ratio} | "
                     f"{m['propagator_state_bytes'] / 2**10:,.0f} KiB | {kv} |")
    lines += ["", "| prompt | " + " | ".join(f"{m} time to first token (s)"
                                             for m in ("propagator", "transformer")) + " |",
              "|---|---|---|"]
    for L in result["config"]["ttft_lens"]:
        cells = []
        for m in ("propagator", "transformer"):
            r = next((x for x in result["ttft"] if x["model"] == m and x["prompt"] == L), None)
            cells.append("–" if r is None else f"{r['seconds']:.3f}")
        lines.append(f"| {L:,} | " + " | ".join(cells) + " |")
    cfg = result["config"]
    params = ", ".join(f"{k} {v['parameters'] / 1e6:.2f}M" for k, v in cfg["models"].items())
    lines += ["", f"Batch 1, greedy, median of {cfg['repeats']} tokens per case, all cases "
                  f"timed in turns; `{cfg['preset']}` preset ({params}). "
                  f"{_machine_line(result['provenance'])}."]
    targets = _targets_lines(result)
    if targets:
        lines += [""] + targets
    return "\n".join(lines) + "\n"


def render_positronic(result: dict) -> str:
    from assoclm.bench.positronic import render

    return render(result)


def render_duplex(result: dict) -> str:
    from assoclm.bench.duplex import render

    return render(result)


def render_eam(result: dict) -> str:
    sort, cfg = result["sort"], result["config"]
    model, run = cfg["model"], cfg["run"]
    lines = ["| test-time solver steps | sequence accuracy | token accuracy | final residual |",
             "|---|---|---|---|"]
    for r in result["depth_dial"]:
        trained = " (trained)" if r["solver_steps"] == model["solver_steps"] else ""
        lines.append(f"| {r['solver_steps']}{trained} | {100 * r['sequence_accuracy']:.1f} % | "
                     f"{100 * r['token_accuracy']:.1f} % | {r['final_residual']:.3g} |")
    lines += ["", f"Sort, length {run['length']}: {sort['parameters']:,} parameters (dim "
                  f"{model['hidden']}, {model['num_heads']} heads, {model['solver_steps']} "
                  f"solver steps, grad tail {model['grad_tail']}, binding {model['binding']}), "
                  f"{sort['steps']:,} steps of batch {run['batch']} in {sort['elapsed_s']:.0f} s; "
                  f"{run['eval_examples']} held-out examples decoded in "
                  f"{run['decode_steps'] or run['length']} parallel rounds. "
                  f"{_machine_line(result['provenance'])}.", "",
              "| solver steps | grad tail | peak tensor memory, one training step | "
              "saved for backward |", "|---|---|---|---|"]
    for r in result["memory"]:
        lines.append(f"| {r['solver_steps']} | {r['grad_tail']} | "
                     f"{r['peak_bytes'] / 2**20:.2f} MiB | "
                     f"{r['saved_for_backward_bytes'] / 2**20:.2f} MiB |")
    lines += ["", f"Batch {cfg['memory_batch']}; parameters "
                  f"({result['memory'][0]['parameter_bytes'] / 2**20:.2f} MiB) not included."]
    targets = _targets_lines(result)
    if targets:
        lines += [""] + targets
    return "\n".join(lines) + "\n"


RENDERERS = {"ops": render_ops, "train": render_train, "train-run": render_train_run,
             "duplex-eval": render_duplex_eval, "recall": render_recall, "lm": render_lm,
             "train-speed": render_train_speed, "decode": render_decode, "eam": render_eam,
             "depth-dial": render_depth_dial, "depth-ood": render_depth_ood,
             "depth-drift": render_depth_drift, "positronic": render_positronic,
             "duplex": render_duplex}


def stated_targets(result: dict) -> list[dict]:
    """The targets a result file states, as ``{name, goal, measured, met}`` rows, whatever
    the suite's layout (the older ``ops``, ``train`` and ``duplex-eval`` files included)."""
    suite = result.get("suite")
    targets = result.get("targets")
    if isinstance(targets, list):
        return targets
    rows = []
    if suite == "ops" and isinstance(targets, dict):
        at = targets.get("at", {})
        where = ", ".join(f"{k}={v}" for k, v in at.items())
        for key, t in targets.items():
            if key != "at":
                rows.append({"name": f"delta-rule op {key.replace('_', ' ')} ({where})",
                             "goal": t["target"], "measured": t["value"], "met": t["met"]})
    elif suite == "train" and result.get("target"):
        cfg = result["config"]
        rows.append({"name": f"training step, parallel / per-token writes ({cfg['preset']} "
                             f"preset, T={cfg['seq_len']})",
                     "goal": result["target"]["ratio"],
                     "measured": result["ratio_input_over_output"],
                     "met": result["target"]["met"]})
    elif suite == "duplex-eval":
        m = result["metrics"]
        values = {**m.get("protocol", {}), **m.get("memory_recall", {})}
        for key, goal in result.get("goals", {}).items():
            value = (values.get(key) or {}).get("value")
            if value is not None:
                rows.append({"name": f"duplex {key.replace('_', ' ')}", "goal": f">= {goal}",
                             "measured": value, "met": value >= goal})
    return rows


def render_targets(results_dir: Path = RESULTS_DIR) -> str:
    """Every target any result file states, with its measured number and whether it is met."""
    lines = ["| result file | target | goal | measured | met |", "|---|---|---|---|---|"]
    for path in sorted(results_dir.glob("*.json")):
        for t in stated_targets(json.loads(path.read_text())):
            shown = _shown(t)
            lines.append(f"| [`{path.name}`](../benchmarks/results/{path.name}) | {t['name']} | "
                         f"{t['goal']} | {shown} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def render(name: str, results_dir: Path = RESULTS_DIR) -> str:
    if name == "targets":
        return render_targets(results_dir)
    path = results_dir / f"{name}.json"
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"results section {name!r}: {path} does not exist") from None
    suite = result.get("suite")
    if suite not in RENDERERS:
        raise SystemExit(f"{path}: unknown suite {suite!r}; known: {sorted(RENDERERS)}")
    return RENDERERS[suite](result)


def update(text: str, results_dir: Path = RESULTS_DIR) -> str:
    return SECTION.sub(lambda m: m.group(1) + render(m.group("name"), results_dir) + m.group(4),
                       text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m assoclm.bench.report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", default=list(PAGES),
                   help=f"markdown files to update (default: {' '.join(PAGES)})")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = p.parse_args(argv)
    stale = 0
    for name in args.files:
        page = Path(name)
        if not page.is_file():
            p.error(f"{page}: no such file (run from the repository root)")
        old = page.read_text()
        new = update(old)
        if args.check:
            if new != old:
                print(f"{page} is stale: run assoclm bench report", file=sys.stderr)
                stale = 1
            continue
        if new != old:
            tmp = page.with_name(f".{page.name}.tmp-{os.getpid()}")
            tmp.write_text(new)
            os.replace(tmp, page)
            print(f"updated {page}")
    return stale


if __name__ == "__main__":
    sys.exit(main())
