# The two commands of the README:
#   make run    set up and run the service on the embedded SQLite database
#   make test   set up, lint and run the whole test suite (system parts included, as root)
# Both install from lock files with hashes (requirements/*.txt); `make lock` refreshes them.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LOCK := $(VENV)/bin/uv pip compile pyproject.toml requirements/build.in --universal --python-version 3.11 \
	--generate-hashes --index-url https://pypi.org/simple --no-header --annotation-style line -q

.PHONY: run test lint bench sounds venv lock clean

$(PY):
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian, apt-get install python3-venv"; exit 1; }

# Runtime packages only (make run).
$(VENV)/.installed-run: requirements/run.txt pyproject.toml | $(PY)
	$(PIP) install -q --require-hashes -r requirements/run.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $@

# Runtime, test and lint packages (make test, make lint, make bench).
$(VENV)/.installed: requirements/test.txt pyproject.toml | $(PY)
	$(PIP) install -q --require-hashes -r requirements/test.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	@touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed

run: $(VENV)/.installed-run
	$(VENV)/bin/sac-ivr serve

# The lint first: CI (.ci/run) runs this target, so the lint is part of CI.
test: lint
	scripts/install-test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# Style, formatting, types and layers (mypy and import-linter read pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check sac_ivr
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: venv
	$(PY) -m bench.agi_calls

sounds: venv
	$(VENV)/bin/sac-ivr sounds build

# Refresh the lock files to the newest releases pyproject.toml allows (then run make test).
lock: $(PY)
	$(PIP) install -q uv
	$(LOCK) --upgrade -o requirements/run.txt
	$(LOCK) --upgrade --extra test -o requirements/test.txt

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts var
