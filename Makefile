# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create the virtual environment in .venv and install sortbox into it first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sortbox-installed
PYTEST_ARGS ?=

.PHONY: install demo test bench clean

install: $(STAMP)

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tools.demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench.bench_decode
	$(BIN)/python -m bench.bench_inference
	$(BIN)/python -m bench.bench_training

clean:
	rm -rf $(VENV) demo-run .pytest_cache
