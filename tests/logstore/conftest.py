"""Fixtures of the log store tests: one ``store`` per backend (SQLite, PostgreSQL, Elasticsearch).

Elasticsearch is the noida-db emulator of its 8.x API, started once per session on a free port in a
temporary folder (or a real server named by ``FLYWHEEL_TEST_ELASTICSEARCH_URL``). Where neither is
available the Elasticsearch tests skip, or fail under ``FLYWHEEL_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dataflywheel.logstore.base import LogStore
from tests.conftest import service_unavailable

ES_URL_ENV = "FLYWHEEL_TEST_ELASTICSEARCH_URL"

StoreFactory = Callable[..., LogStore]


def free_port() -> int:
    """A TCP port nothing listens on (right now)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _noida_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "noida-db"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("noida-db")


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> str | None:
    """None once ``url`` answers, else why not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"noida-db exited with status {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=1):
                return None
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    return f"noida-db did not answer on {url} within {timeout:.0f} s"


def _stop(binary: str, data_dir: Path, proc: subprocess.Popen[bytes]) -> None:
    subprocess.run(
        [binary, "down", "--data-dir", str(data_dir)],
        cwd=data_dir,
        capture_output=True,
        timeout=15,
        check=False,
    )
    if proc.poll() is None:
        # The wrapper and the server it runs share the process group we created for them.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of an Elasticsearch 8 API: ``FLYWHEEL_TEST_ELASTICSEARCH_URL`` or a noida-db we start."""
    given = os.environ.get(ES_URL_ENV)
    if given:
        yield given
        return
    binary = _noida_binary()
    if binary is None:
        service_unavailable("Elasticsearch (noida-db emulator)", "the noida-db command is not installed")
        return
    data_dir = tmp_path_factory.mktemp("noida")
    port = free_port()
    log = (data_dir / "noida.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "start",
            "--data-dir",
            str(data_dir),
            "--only",
            "elasticsearch",
            "--elasticsearch-port",
            str(port),
        ],
        cwd=data_dir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        problem = _wait_http(url, proc)
        if problem is not None:
            log.flush()
            tail = (data_dir / "noida.log").read_text(errors="replace")[-500:]
            service_unavailable("Elasticsearch (noida-db emulator)", f"{problem}; log: {tail}")
        yield url
    finally:
        _stop(binary, data_dir, proc)
        log.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("elasticsearch", marks=pytest.mark.elasticsearch),
    ]
)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores of one backend, all on the same table/index, fresh for the test; closed after."""
    backend: str = request.param
    opened: list[LogStore] = []
    cleanup: Callable[[], None] | None = None

    if backend == "sqlite":
        from dataflywheel.logstore.sqlite import SQLiteLogStore

        path = tmp_path / "logs.sqlite"

        def make(batch_size: int = 1000) -> LogStore:
            return SQLiteLogStore(path, batch_size=batch_size)

    elif backend == "postgres":
        from dataflywheel.logstore.postgres import PostgresLogStore

        url: str = request.getfixturevalue("postgres_url")
        table: str = request.getfixturevalue("pg_table")  # dropped by its own fixture

        def make(batch_size: int = 1000) -> LogStore:
            return PostgresLogStore(url, table=table, batch_size=batch_size)

    else:
        from elasticsearch import Elasticsearch

        from dataflywheel.logstore.elasticsearch import ElasticsearchLogStore

        es_url: str = request.getfixturevalue("elasticsearch_url")
        index = f"test-logs-{uuid.uuid4().hex[:12]}"

        def make(batch_size: int = 1000) -> LogStore:
            return ElasticsearchLogStore(es_url, index=index, batch_size=batch_size)

        def drop_index() -> None:
            with Elasticsearch(es_url) as es:
                es.indices.delete(index=index, ignore_unavailable=True)

        cleanup = drop_index

    def factory(batch_size: int = 1000) -> LogStore:
        store = make(batch_size)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
    if cleanup is not None:
        cleanup()


@pytest.fixture
def store(store_factory: StoreFactory) -> LogStore:
    return store_factory()
