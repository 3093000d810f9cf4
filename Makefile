# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make demo: simulator + local SeaweedFS + archive + verify + dossier, nothing to configure
demo: $(STAMP)
	$(BIN)/archiver demo

## make test: static checks, then the whole suite (unit, simulator, integration on SeaweedFS)
## in two worker processes (pytest-xdist), each with its own SeaweedFS; the tests of one
## xdist_group (the two of one demo run) stay on one worker
test: lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check archiver tests benchmarks
	$(BIN)/ruff format --check archiver tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/archive_throughput.py
	$(BIN)/python benchmarks/verify_rehash.py
	$(BIN)/python benchmarks/dossier_render.py
	$(BIN)/python benchmarks/cli_startup.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
