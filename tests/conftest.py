"""Shared fixtures.

Services: PostgreSQL and Redis tests talk to real servers. Where one is not reachable they skip with the
reason, unless ``FLYWHEEL_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which makes them fail instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.settings import Settings, load_settings

# The hub is unreachable here, and huggingface_hub reads this once at import: set it before any import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REQUIRE_SERVICES = os.environ.get("FLYWHEEL_REQUIRE_SERVICES") == "1"
REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("FLYWHEEL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FLYWHEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def service_unavailable(what: str, reason: str) -> None:
    """Skip (on a user's machine) or fail (in CI) a test whose service is absent."""
    message = f"{what} not available: {reason}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (FLYWHEEL_REQUIRE_SERVICES=1)")
    pytest.skip(message)


def shared_data(name: str) -> Path:
    """A file of the project's shared data (``shared/data/<name>``): in ``../shared`` beside the repository
    root, where the project's checkouts live, or in ``shared/`` inside it. Where it is in neither, the test
    skips naming both places, or fails under ``FLYWHEEL_REQUIRE_SERVICES=1`` (CI): never silently."""
    places = [REPO_ROOT.parent / "shared" / "data" / name, REPO_ROOT / "shared" / "data" / name]
    for path in places:
        if path.is_file():
            return path
    service_unavailable("shared data", f"{name} is in neither {places[0]} nor {places[1]}")
    raise AssertionError("unreachable")  # service_unavailable skips or fails


@pytest.fixture
def aiva_sample() -> Path:
    """The blueprint's AIVA sample: 25 real routing records (system prompt, 7 tools, the teacher's call)."""
    return shared_data("aiva-sample-25.jsonl")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the developer's FLYWHEEL_* variables or writes into the repo's .flywheel."""
    for key in list(os.environ):
        if (
            key.startswith("FLYWHEEL_")
            and key not in ("FLYWHEEL_REQUIRE_SERVICES",)
            and not key.startswith("FLYWHEEL_TEST_")
        ):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded defaults with home in a temporary folder."""
    return load_settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    pytest.importorskip("psycopg")
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        service_unavailable("PostgreSQL", f"{POSTGRES_URL}: {exc}")
    return POSTGRES_URL


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[str]:
    """A fresh table name, dropped after the test."""
    import psycopg

    name = f"test_logs_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding ``tiny-random-llama`` (2 layers, random weights, SmolLM2's tokenizer and ChatML
    template), built once per test session."""
    from dataflywheel.models.registry import TINY_LLAMA, local_model_dir, resolve_model

    settings = load_settings(home=tmp_path_factory.mktemp("flywheel-home"))
    return local_model_dir(resolve_model(TINY_LLAMA, settings), settings)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: str) -> Any:
    """The tiny model's tokenizer (shared: do not modify it; load a fresh one to change its template)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _port_open("127.0.0.1", 6379):
        service_unavailable("Redis", f"nothing listens on {REDIS_URL}")
    return REDIS_URL
