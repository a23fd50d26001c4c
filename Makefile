# Two entry points, both self-contained: they build .venv from pyproject.toml on first use.
#   make run    set up, then serve on http://127.0.0.1:8080 (SQLite + built-in simulator)
#   make test   set up, then run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools
	$(BIN)/python -m pip install -q -e '.[test,dev,postgres]'
	touch $@

run: setup
	$(BIN)/tradercoin serve

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check tradercoin tests bench
	$(BIN)/ruff format --check tradercoin tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
