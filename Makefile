# One command runner for people and CI. `make run` starts the embedded platform,
# `make test` runs the whole suite against real servers; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The loader with Parquet support, the CLI with the embedded servers (its `dev` extra).
MEMBERS := -e libs/contracts -e libs/platform -e services/reload -e 'services/loader[parquet]' -e services/notifier -e services/distribution -e services/ingestion -e services/console -e 'cli[dev]'
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml cli/pyproject.toml)

.PHONY: install browser run test test-pg16 lint bench asyncapi clean

install: $(VENV)/.installed

$(VENV)/.installed: $(PYPROJECTS) requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(MEMBERS) -r requirements-dev.txt
	touch $@

# Debian's Chromium, for the console's browser tests (installed only where it is missing;
# needs root or sudo). The suite needs it: without it the browser tests fail, saying why.
browser:
	./scripts/install-browser.sh

run: install
	$(BIN)/loadbay dev

test: install browser
	$(BIN)/pytest

# The whole suite against PostgreSQL 16.2 (the pgserver wheel) instead of the default 18.
test-pg16: install
	$(BIN)/pip install --quiet -e 'cli[pg16]'
	LOADBAY_EMBEDDED_POSTGRES=pgserver16 $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/reload_bench.py

asyncapi: install
	$(BIN)/loadbay asyncapi > docs/asyncapi.json

clean:
	rm -rf $(VENV) .loadbay
