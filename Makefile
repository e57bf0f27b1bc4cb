# clusterlab: `make lab` opens the course, `make test` runs every test (both set up .venv first).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp

# Quiet KeOps and keep its compiled kernels inside the repository (gitignored), for every target.
export KEOPS_VERBOSE := 0
export PYKEOPS_VERBOSE := 0
export KEOPS_CACHE_FOLDER := $(CURDIR)/.keops_cache
# Prefer the venv's Jupyter data (kernelspecs) over anything installed for the user.
export JUPYTER_PREFER_ENV_PATH := 1

# nbval runs the notebooks only when there are some: pytest on an empty folder collects nothing.
NOTEBOOKS  := $(wildcard notebooks/*.ipynb)
NBVAL_ARGS := --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
              --nbval-sanitize-with tests/sanitize.cfg notebooks
PYTEST_ARGS := tests $(if $(NOTEBOOKS),$(NBVAL_ARGS))

.PHONY: help venv lab test notebooks bench clean distclean

help:
	@echo "make lab        set up .venv and open the course in JupyterLab"
	@echo "make test       set up .venv, lint, run the unit tests and the notebooks"
	@echo "make notebooks  re-execute every notebook in place (CPU outputs)"
	@echo "make bench      run the benchmark ladder"
	@echo "make clean      remove caches and build files (distclean: .venv too)"

venv: $(STAMP)

# Re-installs only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || { test -n "$(PYTHON)" || { echo "python3.11 or python3 not found" >&2; exit 1; }; $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --disable-pip-version-check --no-input -e ".[dev]"
	@touch $@

# --allow-root only where one runs as root anyway (containers); nothing is registered globally.
lab: venv
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

test: venv
	$(BIN)/ruff check .
	MPLBACKEND=Agg $(BIN)/python -m pytest $(PYTEST_ARGS)

notebooks: venv
	$(BIN)/python scripts/run_notebooks.py

bench: venv
	$(BIN)/python -m clusterlab.bench

clean:
	rm -rf .pytest_cache .ruff_cache .keops_cache build dist test-artifacts *.egg-info
	find . -path ./$(VENV) -prune -o -type d \( -name __pycache__ -o -name .ipynb_checkpoints \) -print0 \
	  | xargs -0 rm -rf

distclean: clean
	rm -rf $(VENV)
