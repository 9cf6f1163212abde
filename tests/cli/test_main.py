"""The `assoclm` command end to end, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assoclm.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_bench_ops_quick_writes_results(tmp_path):
    out = tmp_path / "r.json"
    proc = run("bench", "ops", "--quick", "--out", str(out), "--no-plot")
    assert proc.returncode == 0, proc.stderr
    assert "recurrent/chunked" in proc.stdout
    assert json.loads(out.read_text())["suite"] == "ops"


def test_unknown_suite_and_command_fail_with_the_choices():
    proc = run("bench", "nope")
    assert proc.returncode == 2 and "unknown suite 'nope'" in proc.stderr and "ops" in proc.stderr
    proc = run("fly")
    assert proc.returncode == 2 and "invalid choice: 'fly'" in proc.stderr


def test_bench_cli_lists_suites_and_rejects_unknown(capsys):
    from assoclm.cli import main as cli_main

    assert cli_main(["bench"]) == 2
    listed = capsys.readouterr().out
    for suite in ("recall", "lm", "train-speed", "decode", "ops", "all"):
        assert suite in listed
    assert cli_main(["bench", "--help"]) == 0
    assert cli_main(["bench", "nope"]) == 2
    assert "unknown suite" in capsys.readouterr().err
