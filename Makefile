# Every target creates the virtual environment it needs, so a fresh machine runs
# `make run` or `make test` with nothing installed beforehand. `make run` installs only what
# serving needs; `make test` and `make lint` add the test and lint tooling (the dev extra).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# One stamp per set of packages: `make run` never pulls the dev extra, `make test` never
# reinstalls what `make run` already did.
RUN_STAMP := $(VENV)/.run-stamp
DEV_STAMP := $(VENV)/.dev-stamp

.PHONY: run run-hsm test lint install install-dev clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install: $(RUN_STAMP)

install-dev: $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/mock-kms serve

# The service on a SoftHSM token kept in ./.mock-kms/softhsm (needs: apt-get install softhsm2).
# `exec`: the server replaces the shell, so stopping make (or the shell) stops the server.
run-hsm: $(RUN_STAMP)
	eval "$$($(BIN)/mock-kms softhsm-init --data-dir .mock-kms)" && exec $(BIN)/mock-kms serve --backend pkcs11

test: $(DEV_STAMP)
	$(BIN)/python -m pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check kms_service backends clients s3_service local_secrets database bench tools tests
	$(BIN)/ruff format --check kms_service backends clients s3_service local_secrets database bench tools tests
	$(BIN)/mypy

# Benchmarks against moto_server and a bare-Flask ceiling (bench/README.md): prints the table,
# writes bench/results/latest.json and latest.png; under 10 minutes on 2 cores.
bench: $(DEV_STAMP)
	command -v wrk >/dev/null && command -v softhsm2-util >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk softhsm2)
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install --quiet matplotlib
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
