# Every target creates the virtual environment it needs, so a fresh machine runs
# `make run` or `make test` with nothing installed beforehand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run run-hsm test lint install clean

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
	$(BIN)/ruff check kms_service backends clients s3_service tests
	$(BIN)/ruff format --check kms_service backends clients s3_service tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
