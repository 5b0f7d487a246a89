# One command runner for people and CI. `make run` starts the embedded platform,
# `make test` runs the whole suite against real servers; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MEMBERS := -e libs/contracts -e libs/platform -e services/reload -e services/loader -e services/notifier -e services/distribution -e services/ingestion -e cli
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml cli/pyproject.toml)

.PHONY: install run test lint bench asyncapi clean

install: $(VENV)/.installed

$(VENV)/.installed: $(PYPROJECTS) requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(MEMBERS) -r requirements-dev.txt
	touch $@

run: install
	$(BIN)/loadbay dev

test: install
	$(BIN)/pytest

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
