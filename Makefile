# The two commands a newcomer needs: `make run` (chat UI) and `make test` (all tiers + eval gate).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install browser run test test-fast eval-gate check

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install-llama
	python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	# CPU-only torch first: a plain `torch` requirement would pull the CUDA build.
	$(PY) -m pip install torch==2.13.0
	# llama.cpp compiled for a portable x86-64 baseline, never -march=native (see the script).
	scripts/install-llama $(PY)
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

browser:
	scripts/install-browser

run: install
	$(VENV)/bin/qa chat

# Every tier (unit, real models, browser) and then the eval regression gate.
test: install browser
	$(VENV)/bin/python -m pytest
	$(MAKE) eval-gate

eval-gate: install
	$(VENV)/bin/qa eval --gold evals/gold.jsonl --gate
	$(VENV)/bin/qa eval --gold evals/squad2/Normans.jsonl --docs evals/squad2/docs --sample 30 --gate
	$(VENV)/bin/qa eval --gold evals/squad2/Steam_engine.jsonl --docs evals/squad2/docs --sample 30 --gate
	# Held out from the answerability fit (bench/fit_answerability.py): never fitted on.
	$(VENV)/bin/qa eval --gold evals/squad2/Harvard_University.jsonl --docs evals/squad2/docs --sample 30 --gate
	$(VENV)/bin/qa eval --gold evals/injection/probes.jsonl --docs evals/injection/docs --gate
	# Open questions (#13): overviews, lists, why/how, yes/no, conversations.
	$(VENV)/bin/qa eval --gold evals/open.jsonl --gate
	$(VENV)/bin/qa eval --gold evals/squad2/multidoc.jsonl --docs evals/squad2/docs --gate
	$(VENV)/bin/qa eval --gold evals/conversations/stories.jsonl --docs evals/conversations/docs --gate

test-fast: install
	$(VENV)/bin/python -m pytest -m "not slow and not e2e"

check: install
	$(VENV)/bin/ruff format --check qa tests bench
	$(VENV)/bin/ruff check qa tests bench
