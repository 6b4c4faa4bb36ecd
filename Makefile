# trailkeeper: `make run` serves on 127.0.0.1:8000 with SQLite; `make test` runs the full suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test check lint typecheck unit fast bench clean help

help:
	@echo "make run    - install into .venv and serve on http://$(HOST):$(PORT) (SQLite in ./data)"
	@echo "make test   - install test deps, then lint, type-check, layer check and all tests"
	@echo "make check  - the fast tier: lint, types, layers and every test but the slow ones"
	@echo "make bench  - benchmarks (not part of make test)"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "trailkeeper needs Python 3.11+ (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml clients/python/pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]' -e 'clients/python[test]'
	@touch $@

run: $(VENV)/.installed
	$(BIN)/trailkeeper serve --host $(HOST) --port $(PORT) --print-key

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench clients/python
	$(BIN)/ruff format --check src tests bench clients/python
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test
	$(BIN)/python -m pytest

test: lint typecheck unit

fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m 'not slow'

check: lint typecheck fast

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
