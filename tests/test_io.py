"""Atomic writes leave either the old file or the new one, never a half-written one or a
temporary file; provenance names the command, the commit and the machine."""

from __future__ import annotations

import json
import math
import os

import pytest

from assoclm import io


def test_writers_replace_whole_files(tmp_path):
    path = tmp_path / "sub" / "f.json"
    io.write_json_atomic(path, {"a": 1})
    assert json.loads(path.read_text()) == {"a": 1}
    io.write_text_atomic(path, "two")
    assert path.read_text() == "two" and oct(path.stat().st_mode & 0o777) == "0o644"
    io.write_file_atomic(path, lambda tmp: open(tmp, "w").write("three"))
    assert path.read_text() == "three"
    assert os.listdir(path.parent) == ["f.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")

    def broken(tmp: str) -> None:
        open(tmp, "w").write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io.write_file_atomic(path, broken)
    with pytest.raises(ValueError, match="Out of range float"):
        io.write_json_atomic(path, {"x": math.nan}, allow_nan=False)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "ckpt"
    with io.atomic_directory(final) as tmp:
        (tmp / "a").write_text("1")
        assert not final.exists()
    assert (final / "a").read_text() == "1"
    with pytest.raises(RuntimeError), io.atomic_directory(final) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("crash")
    assert (final / "a").read_text() == "1" and os.listdir(tmp_path) == ["ckpt"]
    with io.atomic_directory(final) as tmp:  # replacing an existing one
        (tmp / "b").write_text("3")
    assert os.listdir(final) == ["b"] and os.listdir(tmp_path) == ["ckpt"]


def test_provenance_names_command_commit_and_machine():
    prov = io.provenance("assoclm.cli", ["train", "--preset", "tiny"])
    assert prov["command"] == "python -m assoclm.cli train --preset tiny"
    assert prov["git_commit"] == "unknown" or len(prov["git_commit"].split("-")[0]) == 40
    assert {"torch", "cpu", "torch_threads", "device"} <= set(prov["machine"])


def test_resolve_device_names_what_is_wrong():
    assert str(io.resolve_device("cpu")) == "cpu"
    with pytest.raises(ValueError, match="is not a device"):
        io.resolve_device("tpu")
