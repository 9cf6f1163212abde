"""Render benchmark result files into the README, so that no number there is typed by hand.

    python -m assoclm.bench.report            # rewrite the marked sections of README.md
    python -m assoclm.bench.report --check    # exit 1 if README.md is stale

A section sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->`, where NAME is a
result file in benchmarks/results/ without `.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

RESULTS_DIR = Path("benchmarks/results")
SECTION = re.compile(
    r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
    re.DOTALL,
)


def render_ops(result: dict) -> str:
    cfg, prov = result["config"], result["provenance"]
    names = list(result["rows"][0]["median_s"])
    head = ["T"] + [f"{n} (ms)" for n in names] + ["recurrent / chunked", "chunked / fla naive"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["rows"]:
        cells = [str(row["T"])] + [f"{1e3 * row['median_s'][n]:.1f}" for n in names]
        speed = row.get("speedup_vs_recurrent")
        cells.append(f"{speed:.1f}×" if speed is not None else "n/a")
        cells.append(f"{row['ratio_vs_fla_naive_chunk']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    machine = prov["machine"]
    lines.append("")
    lines.append(
        f"Forward + backward, median of {cfg['repeats']} interleaved runs; B={cfg['batch']}, "
        f"H={cfg['heads']}, K={cfg['key_dim']}, V={cfg['value_dim']}, C={cfg['chunk_size']}, "
        f"{cfg['dtype']} on {machine['device']} ({machine['cpu']}, {machine['torch_threads']} "
        f"threads), torch {machine['torch']}, commit `{prov['git_commit'][:12]}`. "
        f"Command: `{prov['command']}`. Absolute times from this shared machine are "
        "indicative only; the ratios are the result."
    )
    return "\n".join(lines) + "\n"


def _machine_line(prov: dict) -> str:
    m = prov["machine"]
    where = m.get("gpu") or f"{m['cpu']}, {m['torch_threads']} threads"
    return (f"{m['device']} ({where}), torch {m['torch']}, commit `{prov['git_commit'][:12]}`. "
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
        ("memory state", f"{result['memory_state_bytes']:,} bytes per sequence, any length"),
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


def render_duplex_eval(result: dict) -> str:
    from assoclm.duplex.metrics import format_table

    metrics = result["metrics"]
    lines = [format_table(metrics, compare=True)]
    lines.append(f"{metrics.get('dialogues', '?')} held-out dialogues, checkpoint "
                 f"`{Path(metrics.get('checkpoint', '?')).name}`. "
                 f"{_machine_line(result['provenance'])}.")
    return "\n".join(lines) + "\n"


RENDERERS = {"ops": render_ops, "train": render_train, "train-run": render_train_run,
             "duplex-eval": render_duplex_eval}


def render(name: str, results_dir: Path = RESULTS_DIR) -> str:
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
    p.add_argument("--readme", default="README.md")
    p.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    args = p.parse_args(argv)
    readme = Path(args.readme)
    if not readme.is_file():
        p.error(f"--readme {readme}: no such file (run from the repository root)")
    old = readme.read_text()
    new = update(old)
    if args.check:
        if new != old:
            print(f"{readme} is stale: run python -m assoclm.bench.report", file=sys.stderr)
            return 1
        return 0
    if new != old:
        tmp = readme.with_name(f".{readme.name}.tmp-{os.getpid()}")
        tmp.write_text(new)
        os.replace(tmp, readme)
        print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
