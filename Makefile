# The two commands of the README:
#   make run    set up and run the service on the embedded SQLite database
#   make test   set up and run the whole test suite (system parts included, as root)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench sounds venv clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "python3 -m venv failed: on Debian, apt-get install python3-venv"; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

run: venv
	$(VENV)/bin/sac-ivr serve

test: venv
	scripts/install-test-deps
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check sac_ivr

bench: venv
	$(PY) -m bench.agi_calls

sounds: venv
	$(VENV)/bin/sac-ivr sounds build

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts var
