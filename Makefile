# Every target creates and fills .venv itself when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.assoclm-installed
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on Linux.
TORCH  := torch==2.13.0

.PHONY: test test-all lint bench-ops venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## The default test suite: fast, CPU-only, slow tests excluded.
# pytest exits 5 when it collected nothing: a broken suite, so fail loudly.
test: $(STAMP)
	@$(PY) -m pytest -q -m "not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

## Everything, slow tests included.
test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests

## Delta-rule op benchmark (CPU, float32), writes benchmarks/results/ops-cpu.json and .png
bench-ops: $(STAMP)
	$(PY) -m assoclm.bench.ops --out benchmarks/results/ops-cpu.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
