# Two entry points, both self-contained: they build .venv from the hashed locks in requirements/.
#   make run    the runtime set only, then serve on http://127.0.0.1:8080 (SQLite + built-in simulator)
#   make test   the runtime set plus the test and lint tools, then the whole test suite
#   make lock   refresh the locks after editing pyproject.toml's dependencies (docs/install.md)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# uv (pinned, hashed, installed by the venv's own pip) installs the rest: in parallel, with
# every file checked against the lock's sha256 (docs/install.md says why uv).
UV := $(BIN)/uv
# --compile-bytecode: the .pyc files are written once here, since a process that may not write
# them (PYTHONDONTWRITEBYTECODE, set on some machines) compiles every import again at each
# start: 4 s instead of 1.5 s for `tradercoin serve`, in every test that starts one.
INSTALL := $(UV) pip install -q --compile-bytecode --python $(BIN)/python --require-hashes --no-deps
# the project's own modules (an editable install: uv compiles site-packages only); quick
# when little changed
COMPILE_OWN := $(BIN)/python -m compileall -q tradercoin
LOCKS := requirements/uv.txt requirements/bootstrap.txt requirements/run.txt requirements/dev.txt
COMPILE := UV_CUSTOM_COMPILE_COMMAND="make lock" $(UV) pip compile -q --generate-hashes \
	--python-version 3.11

.PHONY: setup run test lint lock lock-check clean

setup: $(VENV)/.dev

# The runtime set: uv; pip, setuptools and wheel (to build the project); what it imports.
$(VENV)/.run: pyproject.toml $(LOCKS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements/uv.txt
	$(INSTALL) -r requirements/bootstrap.txt -r requirements/run.txt
	$(UV) pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $@

# The test and lint tools (and the PostgreSQL driver) on top of the same runtime pins.
$(VENV)/.dev: $(VENV)/.run requirements/dev.txt
	$(INSTALL) -r requirements/dev.txt
	touch $@

run: $(VENV)/.run
	@$(COMPILE_OWN)
	$(BIN)/tradercoin serve

test: $(VENV)/.dev
	@$(COMPILE_OWN)
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check tradercoin tests bench .ci
	$(BIN)/ruff format --check tradercoin tests bench .ci
	$(BIN)/mypy

# Re-resolve every lock from pyproject.toml (newest versions its ranges allow), keeping
# run.txt's pins inside dev.txt. Needs the package index; a few seconds.
lock: $(VENV)/.run
	rm -f $(LOCKS)
	$(COMPILE) -o requirements/uv.txt requirements/uv.in
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
