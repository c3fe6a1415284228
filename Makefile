# Every target creates the virtual environment it needs, so a fresh machine runs
# `make run` or `make test` with nothing installed beforehand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run run-hsm test lint install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/mock-kms serve

# The service on a SoftHSM token kept in ./.mock-kms/softhsm (needs: apt-get install softhsm2).
run-hsm: $(STAMP)
	eval "$$($(BIN)/mock-kms softhsm-init --data-dir .mock-kms)" && $(BIN)/mock-kms serve --backend pkcs11

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check kms_service backends clients s3_service local_secrets bench tools tests
	$(BIN)/ruff format --check kms_service backends clients s3_service local_secrets bench tools tests
	$(BIN)/mypy

# Benchmarks against moto_server and a bare-Flask ceiling (bench/README.md): prints the table,
# writes bench/results/latest.json and latest.png; under 10 minutes on 2 cores.
bench: $(STAMP)
	command -v wrk >/dev/null && command -v softhsm2-util >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq wrk softhsm2)
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/python -m pip install --quiet matplotlib
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
