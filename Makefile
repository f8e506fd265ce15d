# Two commands for a fresh machine: `make run` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: run test lint-imports venv clean

venv: $(STAMP)

# Reinstalled only when the project's dependencies change, so a second `make run` starts fast.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/shop db upgrade
	$(BIN)/shop serve --host 127.0.0.1 --port $(PORT)

lint-imports: $(STAMP)
	$(BIN)/lint-imports --config importlinter.ini

test: lint-imports
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) instance .pytest_cache .import_linter_cache
