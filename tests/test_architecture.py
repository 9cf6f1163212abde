"""The house rules of src/assoclm, read from the code's own imports (docs/ARCHITECTURE.md).

- Floors only point down: no module imports a floor above its own, not at module level,
  not inside a function, not under ``TYPE_CHECKING``.
- No file imports a ``_private`` name from another file (nor reaches one through a module
  it imported).
- No import cycle between files.
- No file over 700 lines; every file write goes through ``assoclm.io``; comments and docs
  cite no issue numbers.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "assoclm"
ROOT = SRC.parents[1]

# Lowest first. A module's floor is that of its longest matching prefix.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("assoclm", "assoclm.io", "assoclm.config"),
    ("assoclm.ops",),
    ("assoclm.layers",),
    ("assoclm.models", "assoclm.testing"),
    ("assoclm.tokenizer", "assoclm.byte_level", "assoclm.checkpoint", "assoclm.data"),
    ("assoclm.generation", "assoclm.train"),
    ("assoclm.duplex",),
    ("assoclm.serve", "assoclm.hf"),
    ("assoclm.bench",),
    ("assoclm.cli",),
)
MAX_LINES = 700


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def floor(module: str) -> int:
    best, level = -1, None
    for index, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, level = len(prefix), index
    if level is None:
        raise AssertionError(f"{module} is on no floor; add it to FLOORS in {__file__}")
    return level


def is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def imports(module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every assoclm import anywhere in
    the file: module level, functions, TYPE_CHECKING blocks."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names
                      if a.name.split(".")[0] == "assoclm"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module if is_package(module) else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            if base.split(".")[0] != "assoclm":
                continue
            names = [a.name for a in node.names]
            # "from package import submodule" imports the submodule's file
            submodules = [n for n in names if f"{base}.{n}" in MODULES]
            found += [(f"{base}.{n}", [], node.lineno) for n in submodules]
            rest = [n for n in names if n not in submodules]
            if rest or not submodules:
                found.append((base, rest, node.lineno))
    return found


def test_every_module_is_on_a_floor():
    for module in MODULES:
        floor(module)


def test_no_module_imports_a_floor_above_its_own():
    upward = []
    for module in MODULES:
        for target, _, line in imports(module):
            if floor(target) > floor(module):
                upward.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} "
                              f"(floor {floor(module)}) imports {target} (floor {floor(target)})")
    assert not upward, "imports that run up the stack:\n" + "\n".join(upward)


def test_no_file_imports_another_files_private_names():
    private = []
    for module in MODULES:
        tree = ast.parse(MODULES[module].read_text())
        imported_modules = set()
        for target, names, line in imports(module):
            if target == module:
                continue
            private += [f"{MODULES[module].relative_to(ROOT)}:{line}: {name} from {target}"
                        for name in names if name.startswith("_") and not name.startswith("__")]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported_modules |= {a.asname or a.name for a in node.names
                                     if a.name.startswith("assoclm")}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported_modules |= {a.asname or a.name for a in node.names
                                     if f"{node.module}.{a.name}" in MODULES}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and \
                    not node.attr.startswith("__") and ast.unparse(node.value) in imported_modules:
                private.append(f"{MODULES[module].relative_to(ROOT)}:{node.lineno}: "
                               f"{ast.unparse(node)}")
    assert not private, "private names used across files:\n" + "\n".join(private)


def test_no_import_cycle_between_files():
    graph = {m: sorted({t for t, _, _ in imports(m) if t in MODULES and t != m})
             for m in MODULES}
    # Tarjan's strongly connected components: a component of two or more files is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, "import cycles between files:\n" + "\n".join(map(str, cycles))


def test_the_checks_catch_what_they_claim_to():
    """The floor table and the import reader see a real upward import and a cycle."""
    assert floor("assoclm.train.loop") > floor("assoclm.checkpoint")
    assert floor("assoclm.duplex.task") > floor("assoclm.train.task")
    assert floor("assoclm.cli.train") == len(FLOORS) - 1
    found = {t for t, _, _ in imports("assoclm.cli")}
    assert not found or all(t.startswith("assoclm") for t in found)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_file_is_over_the_line_limit(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(ROOT)} has {lines} lines"


# The corpus cache verifies a download's sha256 between pip writing it into a temporary
# directory and the rename into the cache, and keeps another process's finished extraction:
# a fetch protocol of its own, not a file assoclm writes.
WRITERS = ("assoclm.io", "assoclm.data.corpora")


def test_every_file_write_goes_through_io():
    """Writers outside assoclm.io would each need their own temporary name and rename."""
    patterns = re.compile(r"os\.replace\(|tempfile\.|\.write_text\(|\.write_bytes\(|"
                          r"\.savefig\(|save_file\(")
    offenders = []
    for module, path in MODULES.items():
        if module in WRITERS:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if patterns.search(code):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "file writes outside assoclm.io:\n" + "\n".join(offenders)


ISSUE_REFERENCE = re.compile(r"\b(?:issues?|task)\s*#?\d+\b|(?:^|[\s(])#\d+\b", re.IGNORECASE)


def test_comments_and_docs_state_requirements_in_words():
    """No issue numbers: a reader has no tracker at hand."""
    files = list(SRC.rglob("*.py")) + list(SRC.rglob("*.md")) + [ROOT / "README.md"] + \
        sorted((ROOT / "docs").glob("*.md"))
    found = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ISSUE_REFERENCE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "issue numbers in comments or docs:\n" + "\n".join(found)


def test_citations_of_the_architecture_document_name_its_sections():
    """Code that cites docs/ARCHITECTURE.md by section cites a section it has."""
    headings = {line.lstrip("#").strip() for line in
                (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines()
                if line.startswith("#")}
    cited = []
    for path in SRC.rglob("*.py"):
        text = " ".join(path.read_text().split())
        cited += [(path, name) for name in re.findall(r'ARCHITECTURE\.md, "([^"]+)"', text)]
    assert cited, "no citation found: the check would pass on nothing"
    missing = [f"{p.relative_to(ROOT)}: {name!r}" for p, name in cited if name not in headings]
    assert not missing, "cited sections that docs/ARCHITECTURE.md lacks:\n" + "\n".join(missing)


def test_inference_loads_models_without_the_trainer():
    """Generation, the live duplex session and the commands that use them import neither
    the trainer nor the benchmarks (a server will load models the same way)."""
    code = ("import sys, assoclm.checkpoint, assoclm.generation, assoclm.duplex.session, "
            "assoclm.cli.generate, assoclm.cli.chat; "
            "print(sorted(m for m in sys.modules if m.startswith(('assoclm.train', "
            "'assoclm.bench'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", f"inference imported: {out}"


def test_the_readme_is_a_map():
    """At most 350 lines: the narrative lives in docs/, the README points to it."""
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 350, f"README.md has {lines} lines"
