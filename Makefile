# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core
TORCH_STAMP := $(VENV)/.installed-torch
# torch first and pinned, and pinned again on every later install: an unpinned torch pulled in by
# sentence-transformers is a CUDA build.
TORCH := "torch==2.13.0"

.PHONY: demo test test-fast check serve bench clean

$(TORCH_STAMP):
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	touch $(TORCH_STAMP)

# The core install: what `make demo` (an MCP agent loop over stdio) needs, nothing optional.
$(CORE_STAMP): pyproject.toml $(TORCH_STAMP)
	$(BIN)/pip install --quiet $(TORCH) -e .
	touch $(CORE_STAMP)

# Everything the tests need: every extra (http, langchain, charts) and the test tools.
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
# (64-78 s on an idle 2-core machine).
test-fast: $(STAMP)
	ESCALATION_MATRIX_FUZZ_EXAMPLES=25 $(BIN)/python -m pytest -q -n auto -m "not model and not slow"

# Lint (never a formatter), types, and the import layers (pyproject.toml holds each tool's settings).
check: $(STAMP)
	$(BIN)/ruff check server tests scripts benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(CORE_STAMP)
	$(BIN)/python benchmarks/bench_classify.py

clean:
	rm -rf $(VENV)
