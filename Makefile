# The two commands a newcomer needs: `make run` (chat UI) and `make test` (all test tiers).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast check bench

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# CPU-only torch first: a plain `torch` requirement would pull the CUDA build.
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

run: install
	$(VENV)/bin/qa chat

test: install
	$(VENV)/bin/python -m pytest

test-fast: install
	$(VENV)/bin/python -m pytest -m "not slow and not e2e"

check: install
	$(VENV)/bin/ruff format --check qa tests
	$(VENV)/bin/ruff check qa tests
