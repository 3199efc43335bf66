# The two commands a new user needs: `make run` (the main job) and `make test`.
# Both create .venv and install softxent with pinned versions on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $(STAMP)

# The main job: each step prints what it shows; later steps add proofs,
# verification, experiments and figures.
run: $(STAMP)
	$(BIN)/softxent demo
	$(BIN)/python proofs/binary_cross_entropy.py
	$(BIN)/softxent verify
	$(BIN)/softxent run $(filter-out %/sweep_k10.toml,$(wildcard experiments/configs/*.toml))

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt ruff
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
