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
	@t0=$$(date +%s); $(VENV)/bin/python -m pytest && echo "[time] tests: $$(( $$(date +%s) - t0 )) s"
	@t0=$$(date +%s); $(MAKE) eval-gate && echo "[time] eval gate: $$(( $$(date +%s) - t0 )) s"

# Every gated set, listed in evals/gate.toml, in one process (the models load once).
# `make eval-gate EVAL_FLAGS="--gate --update-baseline"` accepts the runs as the new baselines.
EVAL_FLAGS ?= --gate
eval-gate: install
	if [ -d ../shared/datasets/multirc ]; then $(PY) evals/samples.py multirc; fi
	$(VENV)/bin/qa eval --manifest evals/gate.toml $(EVAL_FLAGS)

test-fast: install
	$(VENV)/bin/python -m pytest -m "not slow and not e2e"

check: install
	$(VENV)/bin/ruff format --check qa tests bench fit
	$(VENV)/bin/ruff check qa tests bench fit
