"""How the job store reaches its database: the URL, the SQLAlchemy engine (SQLite pragmas, PostgreSQL
timeouts), the schema migrations and one short transaction per call (:class:`StoreConnection`, the base of
:class:`~dataflywheel.jobs.store.JobStore`).

SQLite runs in WAL mode (readers never wait for the writer) with foreign keys on and a busy timeout, so
concurrent writers wait for each other instead of failing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from sqlalchemy import URL, CursorResult, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from dataflywheel.closing import Closing
from dataflywheel.errors import DependencyMissingError, FlywheelError, StoreError
from dataflywheel.sqlite_wal import set_wal

if TYPE_CHECKING:
    from alembic.config import Config

    from dataflywheel.settings import Settings

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
PG_CONNECT_TIMEOUT_S: Final = 10
# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK_KEY: Final = 0x66775F6A6F6273  # "fw_jobs"
_WRITE: Final = "flywheel_write"


def alembic_config() -> Config:
    """The Alembic configuration of the job store's migrations (no ``alembic.ini``).

    Set ``config.attributes["connection"]`` to an open connection before running a command.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def default_url(settings: Settings) -> str:
    """The job store URL of ``settings``: ``job_store.url``, else the SQLite file ``<home>/jobs.db``."""
    if settings.job_store.url:
        return settings.job_store.url
    return f"sqlite:///{(settings.home / 'jobs.db').absolute()}"


def _redact(url: str) -> str:
    """``url`` with its password masked, also when SQLAlchemy cannot parse it."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid job store URL {_redact(url)!r}: {exc}") from None
    # Plain postgresql:// would pick psycopg2; the project ships psycopg 3.
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"job store URL {_redact(url)!r}: only sqlite:// and postgresql:// are supported")
    return parsed


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _sqlite_on_begin): the sqlite3 module's own transaction
    # handling would start transactions late and could not take the write lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")  # off by default; the cascades need it
        set_wal(cursor, SQLITE_BUSY_TIMEOUT_MS / 1000)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, and much faster
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    # A write transaction takes SQLite's write lock at BEGIN: a later read-then-write would otherwise
    # fail with SQLITE_BUSY when another writer committed in between (busy_timeout cannot help there).
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def reason(exc: DBAPIError) -> str:
    return str(exc.orig).strip() if exc.orig is not None else str(exc)


class StoreConnection(Closing):
    """The job store's database: engine, sessions, migrations. :class:`~dataflywheel.jobs.store.JobStore`
    adds the tables' methods (each one short transaction, :meth:`_tx`)."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        parsed = _parse_url(url)
        self._dsn = url
        self.url: str = parsed.render_as_string(hide_password=True)
        """The URL, password masked."""
        self.dialect: str = parsed.get_backend_name()
        self._engine = self._create_engine(parsed)
        self._write_engine = self._engine.execution_options(**{_WRITE: True})
        self._read = sessionmaker(bind=self._engine, expire_on_commit=False)
        self._write = sessionmaker(bind=self._write_engine, expire_on_commit=False)
        try:
            if migrate:
                self.upgrade()
            else:
                with self._engine.connect():
                    pass
        except BaseException:
            self._engine.dispose()
            raise

    def _create_engine(self, url: URL) -> Engine:
        try:
            if self.dialect == "sqlite":
                memory = url.database in (None, "", ":memory:")
                engine = create_engine(
                    url,
                    connect_args={"check_same_thread": False},
                    # An in-memory database exists once per connection: keep exactly one.
                    poolclass=StaticPool if memory else None,
                )
                event.listen(engine, "connect", _sqlite_on_connect)
                event.listen(engine, "begin", _sqlite_on_begin)
                return engine
            return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})
        except (ImportError, NoSuchModuleError) as exc:
            raise DependencyMissingError(
                f"the job store at {self.url} needs psycopg: pip install 'data-flywheel[postgres]' ({exc})"
            ) from None
        except ArgumentError as exc:
            raise StoreError(f"job store URL {self.url!r}: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """Open the store of ``settings.job_store.url``, else of the SQLite file ``<home>/jobs.db``."""
        if not settings.job_store.url:
            settings.home.mkdir(parents=True, exist_ok=True)
        return cls(default_url(settings))

    def upgrade(self) -> None:
        """Migrate the schema to the newest revision. Idempotent.

        Safe when several processes open the store at once: on PostgreSQL they queue on an advisory
        lock, on SQLite on the write lock, and the later ones find the schema up to date.
        """
        from alembic import command
        from alembic.util import CommandError

        config = alembic_config()
        try:
            with self._write_engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # Held until this transaction ends: the whole migration is serialized.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except DBAPIError as exc:
            raise StoreError(f"cannot open the job store at {self.url}: {reason(exc)}") from exc
        except CommandError as exc:
            # Typically a database migrated by a newer data-flywheel (a revision this one does not know).
            raise StoreError(f"cannot migrate the job store at {self.url}: {exc}") from exc

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    @property
    def dsn(self) -> str | None:
        """The URL with its password, to open this same store in a child process (never log it); None for an
        in-memory SQLite store, which no other process can open."""
        return None if self.url in ("sqlite://", "sqlite:///:memory:") else self._dsn

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for diagnostics, tests and benchmarks; use the methods for data)."""
        return self._engine

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    @contextmanager
    def _tx(self, what: str, *, write: bool = False) -> Iterator[Session]:
        """A session in a transaction, committed at the end; database errors become StoreError."""
        factory = self._write if write else self._read
        try:
            with factory.begin() as session:
                yield session
        except FlywheelError:
            raise
        except DBAPIError as exc:
            raise StoreError(f"job store at {self.url}: {what} failed: {reason(exc)}") from exc

    def _update_one(self, what: str, stmt: Any) -> bool:
        """Run a conditional UPDATE; True when it changed exactly one row."""
        with self._tx(what, write=True) as s:
            result: CursorResult[Any] = s.execute(stmt.execution_options(synchronize_session=False))  # type: ignore[assignment]
            return result.rowcount == 1
