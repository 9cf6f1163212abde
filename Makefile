# Every target creates and fills .venv itself when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.assoclm-installed
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build on Linux.
TORCH  := torch==2.13.0

.PHONY: demo demo-lm test test-all lint bench-ops bench-train bench-all report venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

## The main job: train a small Propagator on the full-duplex dialogue mix on the CPU (3,000
## steps, about 10 minutes on 2 cores), score the protocol on held-out dialogues, then play a
## scripted live session (listening, the turn-taking decision, an interrupt, a fact updated and
## then asked for). The recall preset (full-strength writes, no forgetting, a short
## convolution, answers to memory questions weighted 5x), with 8 lanes per step and a peak
## learning rate of 5e-3 (recall appears within fewer tokens with more, smaller steps at a
## higher rate), on a mix with more memory dialogues than the default. A step budget, not a
## clock, so that every machine trains for the same number of steps.
DEMO_OUT ?= runs/demo
demo: $(STAMP)
	$(PY) -m assoclm.cli train --preset recall --dataset-mode duplex_chat --duplex-mix chatterbot:1,shakespeare:1,memory:4 --batch-size 8 --learning-rate 5e-3 --max-steps 3000 --eval-every 500 --eval-probes 50 --out $(DEMO_OUT) --overwrite
	$(PY) -m assoclm.cli eval --task duplex --checkpoint $(DEMO_OUT) --max-probes 200
	$(PY) -m assoclm.cli chat --checkpoint $(DEMO_OUT) --script --temperature 0
	@echo "Chat with it (type while it answers to interrupt): .venv/bin/assoclm chat --checkpoint $(DEMO_OUT)"

## The language-model demo: fetch Shakespeare, train a small Propagator within a fixed time
## budget (5 minutes of training), print held-out loss, bits per byte and a sample.
DEMO_LM_OUT ?= runs/demo-lm
demo-lm: $(STAMP)
	$(PY) -m assoclm.cli train --preset demo --out $(DEMO_LM_OUT) --overwrite --sample-prompt "ROMEO:"
	@echo "Generate more: .venv/bin/assoclm generate --checkpoint $(DEMO_LM_OUT) --prompt 'JULIET:'"

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

## Training-step throughput, write_from input vs output (CPU), benchmarks/results/train-cpu.*
bench-train: $(STAMP)
	$(PY) -m assoclm.bench.train --out benchmarks/results/train-cpu.json

## Every benchmark suite (ops, recall, lm, train-speed, decode) at full size: hours on a CPU.
## The committed CPU results used the settings written in each result file's "command".
bench-all: $(STAMP)
	$(PY) -m assoclm.cli bench all

## Re-render README.md and docs/RESULTS.md from benchmarks/results/*.json
report: $(STAMP)
	$(PY) -m assoclm.bench.report

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info
