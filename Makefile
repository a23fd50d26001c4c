# Two entry points, both self-contained: they build .venv from the hashed locks in requirements/.
#   make run    the runtime set only, then serve on http://127.0.0.1:8080 (SQLite + built-in simulator)
#   make test   the runtime set plus the test and lint tools, then the whole test suite
#   make lock   refresh the locks after editing pyproject.toml's dependencies (docs/install.md)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALL := $(BIN)/python -m pip install -q --require-hashes --no-deps
LOCKS := requirements/bootstrap.txt requirements/run.txt requirements/dev.txt
COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-find-links --no-emit-index-url

.PHONY: setup run test lint lock lock-check clean

setup: $(VENV)/.dev

# The runtime set: pip, setuptools and wheel (to build the project), then what it imports.
$(VENV)/.run: pyproject.toml requirements/bootstrap.txt requirements/run.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(INSTALL) -r requirements/bootstrap.txt
	$(INSTALL) -r requirements/run.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

# The test and lint tools (and the PostgreSQL driver) on top of the same runtime pins.
$(VENV)/.dev: $(VENV)/.run requirements/dev.txt
	$(INSTALL) -r requirements/dev.txt
	touch $@

run: $(VENV)/.run
	$(BIN)/tradercoin serve

test: $(VENV)/.dev
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check tradercoin tests bench .ci
	$(BIN)/ruff format --check tradercoin tests bench .ci
	$(BIN)/mypy

# Re-resolve every lock from pyproject.toml (newest versions its ranges allow), keeping
# run.txt's pins inside dev.txt. Needs the dev set (pip-tools) and the package index.
lock: $(VENV)/.dev
	rm -f $(LOCKS)
	$(COMPILE) -o requirements/bootstrap.txt requirements/bootstrap.in
	$(COMPILE) -c requirements/bootstrap.txt -o requirements/run.txt pyproject.toml
	$(COMPILE) -c requirements/bootstrap.txt -c requirements/run.txt \
		--extra postgres --extra test --extra dev -o requirements/dev.txt pyproject.toml
	$(BIN)/python .ci/lockcheck.py

# Offline: fails when pyproject.toml and the locks disagree (.ci/run runs it first).
lock-check: $(VENV)/.run
	$(BIN)/python .ci/lockcheck.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
