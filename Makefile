# Two commands for a fresh machine: `make run` and `make test`. Both bootstrap .venv: `make run`
# with what the shop needs to run, `make test` adds the test tool chain (the `dev` extra).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-stamp
DEV := $(VENV)/.dev-stamp
PORT ?= 8000
# pytest-xdist workers for `make test` (tests/README.md, "Running in parallel"); 0 runs in one process.
TEST_WORKERS ?= 2

.PHONY: run test test-context lint-imports docs venv clean

venv: $(RUNTIME)

# Each stamp is redone only when the project's dependencies change, so a second `make run` starts
# at once. pip's own progress shows; the lines before it say what is happening and why it waits.
$(RUNTIME): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	@test -x $(BIN)/python || { echo "==> creating the virtual environment in $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing the shop and what it needs to run into $(VENV) (the first time takes a minute)"
	$(BIN)/python -m pip install --disable-pip-version-check -e .
	@touch $(RUNTIME)

$(DEV): $(RUNTIME)
	@echo "==> installing the test tool chain (pytest, import-linter, mypy, ruff, schemathesis, ...) into $(VENV)"
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[dev]'
	@touch $(DEV)

# One process migrates and serves (a second start-up would double the wait for the first answer).
# exec: the server is make's child itself, not a shell's, so Ctrl-C or SIGTERM reaches it once
# and it stops cleanly (exit 0) instead of make reporting an error.
run: $(RUNTIME)
	@echo "==> migrating the databases, then serving on http://127.0.0.1:$(PORT) (Ctrl-C stops)"
	exec $(BIN)/shop serve --migrate --host 127.0.0.1 --port $(PORT)

# The architecture documentation, from the code (docs/architecture/; a test checks it is current).
docs: $(RUNTIME)
	$(BIN)/shop docs

lint-imports: $(DEV)
	$(BIN)/lint-imports --config importlinter.ini

# Two runs: the suite on TEST_WORKERS workers, then the tests marked `alone` (they stop a server
# the others share) by themselves. The second runs even when the first fails; make fails if either did.
test: lint-imports
	@status=0; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not alone" || status=$$?; \
	$(BIN)/python -m pytest -m alone || status=$$?; \
	exit $$status

# One context's tests alone: its use cases on fakes, and the contract tests of the fakes of the
# contexts it calls (tests/isolation.py). `make test-context CONTEXT=order`.
test-context: $(DEV)
	@test -n "$(CONTEXT)" || { echo "usage: make test-context CONTEXT=<a context of app/registry.py, e.g. order>" >&2; exit 2; }
	$(BIN)/python -m pytest --context $(CONTEXT) tests/contexts

clean:
	rm -rf $(VENV) instance .pytest_cache .import_linter_cache
