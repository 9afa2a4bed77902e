"""Fixtures of the job store tests: every store test runs on SQLite and on PostgreSQL.

Each PostgreSQL test gets a schema of its own (``fwtest_<hex>``, first on the connection's search_path),
dropped afterwards, so tests neither see each other's rows nor need a database each.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from dataflywheel.jobs import JobStore


def _drop_schema(postgres_url: str, schema: str) -> None:
    import psycopg

    # A connection a failed test left inside a transaction would block the DROP: give up after a while
    # (the schema stays behind) rather than hang the end of the session.
    with psycopg.connect(postgres_url, autocommit=True, options="-clock_timeout=10000") as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(scope="session")
def _drop_later(postgres_url: str) -> Iterator[Callable[[str], None]]:
    """Drops test schemas in a background thread (a DROP of the whole schema takes ~0.1 s, and the next
    test need not wait for it); waits for every drop, and reports failures, at the end of the session."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-schema")
    futures: list[Future[None]] = []
    yield lambda schema: futures.append(pool.submit(_drop_schema, postgres_url, schema))
    pool.shutdown(wait=True)
    for future in futures:
        future.result()


@pytest.fixture
def pg_schema_url(postgres_url: str, _drop_later: Callable[[str], None]) -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL schema (first on the connection's search_path), dropped afterwards."""
    import psycopg

    schema = f"fwtest_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield (
            make_url(postgres_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        _drop_later(schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty job store database (a SQLite file, or a fresh PostgreSQL schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[JobStore]:
    """An open, migrated job store."""
    s = JobStore(store_url)
    yield s
    s.close()
