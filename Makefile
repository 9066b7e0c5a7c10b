# One entry point for setting up, testing and running the platform on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: all venv services tools browser lint typecheck test unit run bench clean

all: test

$(STAMP): pyproject.toml
	@bash scripts/install-venv.sh "$(PYTHON)" $(VENV) dev
	@touch $(STAMP)

venv: $(STAMP)

services:
	@bash scripts/ensure-services.sh

tools:
	@bash scripts/ensure-prometheus.sh >/dev/null

browser:
	@bash scripts/ensure-chromium.sh >/dev/null

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy core collectors processor storage api monitoring simulator cryptostock

test: venv services tools browser lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: venv
	$(BIN)/pytest -m "not integration and not browser" $(PYTEST_ARGS)

run: venv
	$(BIN)/cryptostock run

bench: venv services
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
