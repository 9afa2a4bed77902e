"""The job store: every job, its candidates, evaluations, stages and events, in SQLite or PostgreSQL.

``JobStore(url)`` opens the database and brings its schema up to date (Alembic migrations, safe when
several processes open it at once). Every method is one short transaction on a session of its own, so a
store is shared freely between threads; methods return frozen records (:mod:`dataflywheel.jobs.records`),
never ORM objects.

Concurrency. Status changes read, check and write in one transaction that holds the row: ``SELECT ... FOR
NO KEY UPDATE`` on PostgreSQL, a write transaction taken up front (``BEGIN IMMEDIATE``) on SQLite, whose
writers are serialized. Claiming a job is a single conditional ``UPDATE``, so of two racing workers
exactly one wins.

SQLite runs in WAL mode (readers never wait for the writer) with foreign keys on and a busy timeout, so
concurrent writers wait for each other instead of failing.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from sqlalchemy import (
    URL,
    CursorResult,
    Engine,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ColumnElement

from dataflywheel.errors import DependencyMissingError, FlywheelError, StoreError
from dataflywheel.jobs.errors import (
    IllegalTransitionError,
    JobFinishedError,
    JobNotFoundError,
    JobRunningError,
    StageLeaseHeldError,
    StaleAttemptError,
)
from dataflywheel.jobs.records import (
    CandidateRunDetail,
    CandidateRunRecord,
    CustomizationRecord,
    DatasetRecord,
    EvaluationRecord,
    EventRecord,
    JobDetail,
    JobRecord,
    JudgeRecord,
    StageLease,
    StageRecord,
    WorkloadSummary,
)
from dataflywheel.jobs.status import (
    JOB_UNFINISHED,
    TASK_TERMINAL,
    CandidateStage,
    EventKind,
    JobKind,
    JobStatus,
    TaskStatus,
    check_transition,
)
from dataflywheel.jobs.tables import (
    CandidateRun,
    Customization,
    Dataset,
    Evaluation,
    Job,
    JobEvent,
    JudgeRun,
    Stage,
    new_job_id,
    utcnow,
)

if TYPE_CHECKING:
    from alembic.config import Config

    from dataflywheel.settings import Settings

logger = logging.getLogger(__name__)

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
DEFAULT_STALE_AFTER_S: Final = 60.0
"""A job whose owner has not sent a heartbeat for this long may be claimed by another worker."""
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
PG_CONNECT_TIMEOUT_S: Final = 10
# Any constant works; it only has to be the same in every process that migrates this database.
_MIGRATION_LOCK_KEY: Final = 0x66775F6A6F6273  # "fw_jobs"
_WRITE: Final = "flywheel_write"

_JOB_FIELDS: Final = frozenset({"num_records", "progress", "result", "owner", "heartbeat_at"})
_RUN_FIELDS: Final = frozenset({"deployment", "started_at", "finished_at", "runtime_s"})
_TASK_COMMON: Final = frozenset({"status", "progress", "eta_s", "error", "started_at", "finished_at", "runtime_s"})
_EVAL_FIELDS: Final = _TASK_COMMON | {"done", "total", "scores", "artifact_path"}
_CUSTOM_FIELDS: Final = _TASK_COMMON | {
    "epochs_completed",
    "total_epochs",
    "steps_completed",
    "total_steps",
    "loss",
    "tokens_per_s",
    "adapter_name",
    "adapter_path",
    "metrics",
}
_JUDGE_FIELDS: Final = frozenset({"model", "base_url", "kind", "status", "error"})
_JUDGE_KINDS: Final = frozenset({"remote", "local", "disabled"})


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


def open_job_store(settings: Settings) -> JobStore:
    """Open (and migrate) the job store that ``settings`` name; see :meth:`JobStore.from_settings`."""
    return JobStore.from_settings(settings)


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
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, and much faster
    finally:
        cursor.close()


def _set_wal(cursor: Any) -> None:
    """Switch to WAL. Switching needs an exclusive lock, and SQLite may answer "database is locked" at once
    (without its busy handler) while another connection opens the same new file: retry for a while."""
    import sqlite3
    import time

    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(conn: Any) -> None:
    # A write transaction takes SQLite's write lock at BEGIN: a later read-then-write would otherwise
    # fail with SQLITE_BUSY when another writer committed in between (busy_timeout cannot help there).
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class JobStore:
    """The repository of jobs. Thread-safe; one short transaction per call.

    ``url`` is an SQLAlchemy URL: ``sqlite:///path/jobs.db`` or ``postgresql://user@host/db``
    (psycopg 3 is used). ``sqlite://`` (in memory) keeps a single connection: use it from one thread.
    With ``migrate`` (the default) the schema is upgraded to the newest revision on open.

    Raises :class:`~dataflywheel.errors.StoreError` when the database cannot be reached; the message
    names the URL with its password masked.
    """

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

    # Lifecycle -------------------------------------------------------------------------------------
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
            raise StoreError(f"cannot open the job store at {self.url}: {_reason(exc)}") from exc
        except CommandError as exc:
            # Typically a database migrated by a newer data-flywheel (a revision this one does not know).
            raise StoreError(f"cannot migrate the job store at {self.url}: {exc}") from exc

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

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
        return f"JobStore({self.url!r})"

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
            raise StoreError(f"job store at {self.url}: {what} failed: {_reason(exc)}") from exc

    # Jobs ------------------------------------------------------------------------------------------
    def create_job(
        self,
        workload_id: str,
        client_id: str,
        config: Mapping[str, Any] | None = None,
        kind: JobKind = JobKind.FLYWHEEL,
    ) -> JobRecord:
        """Store a new pending job. ``config`` holds the request's overrides (JSON-serializable)."""
        now = utcnow()
        with self._tx("create job", write=True) as s:
            job = Job(
                id=new_job_id(),
                kind=JobKind(kind),
                workload_id=workload_id,
                client_id=client_id,
                status=JobStatus.PENDING,
                config=dict(config or {}),
                created_at=now,
                updated_at=now,
                num_records=0,
                progress=0.0,
            )
            s.add(job)
            s.flush()
            _add_event(s, job.id, EventKind.STATUS, "created (pending)", data={"to": JobStatus.PENDING.value}, ts=now)
            return _job_record(job)

    def get_job(self, job_id: str) -> JobRecord:
        """The job ``job_id``; :class:`JobNotFoundError` if there is none."""
        with self._tx("get job") as s:
            job = s.get(Job, job_id)
            if job is None:
                raise _job_not_found(job_id)
            return _job_record(job)

    def job_detail(self, job_id: str) -> JobDetail:
        """The job with its candidates (evaluations, customization), judge and datasets, in four queries."""
        with self._tx("read job detail") as s:
            return _load_detail(s, job_id)

    def list_jobs(
        self,
        *,
        status: JobStatus | Iterable[JobStatus] | None = None,
        workload_id: str | None = None,
        client_id: str | None = None,
        kind: JobKind | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[JobRecord], int]:
        """A page of jobs, newest first, and the number of jobs matching the filters (all pages)."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        conditions: list[ColumnElement[bool]] = []
        if status is not None:
            statuses = [JobStatus(status)] if isinstance(status, str) else [JobStatus(s) for s in status]
            conditions.append(Job.status.in_(statuses))
        if workload_id is not None:
            conditions.append(Job.workload_id == workload_id)
        if client_id is not None:
            conditions.append(Job.client_id == client_id)
        if kind is not None:
            conditions.append(Job.kind == JobKind(kind))
        with self._tx("list jobs") as s:
            total = s.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
            page = s.scalars(
                select(Job)
                .where(*conditions)
                .order_by(Job.created_at.desc(), Job.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [_job_record(j) for j in page], total

    def set_job_status(self, job_id: str, status: JobStatus, *, error: str | None = None) -> JobRecord:
        """Change the job's status, enforcing :data:`~dataflywheel.jobs.status.JOB_TRANSITIONS`.

        Entering running sets ``started_at`` (the first time only); entering a terminal status sets
        ``finished_at`` (and progress 100 when completed). ``error`` is kept only if the job has none yet:
        the first error is the cause, later ones are consequences (all are in the events). Raises
        :class:`IllegalTransitionError` or :class:`JobNotFoundError`.
        """
        new = JobStatus(status)
        with self._tx("set job status", write=True) as s:
            job = _lock_job(s, job_id)
            _change_job_status(s, job, new, error)
            return _job_record(job)

    def update_job(self, job_id: str, **fields: Any) -> JobRecord:
        """Set some of ``num_records``, ``progress`` (0-100), ``result``, ``owner``, ``heartbeat_at``."""
        _check_fields("update_job", fields, _JOB_FIELDS)
        fields = _clean_values(fields)
        with self._tx("update job", write=True) as s:
            job = _lock_job(s, job_id)
            for name, value in fields.items():
                setattr(job, name, value)
            job.updated_at = utcnow()
            return _job_record(job)

    def request_cancel(self, job_id: str) -> JobRecord:
        """Ask for the job to stop.

        A pending job that no worker holds becomes cancelled at once (nobody else would finish the
        cancellation); a running job, or a pending one a worker has claimed, becomes cancelling and its
        worker stops it. Cancelling again is a no-op. Raises :class:`JobFinishedError` when the job has
        already finished.
        """
        with self._tx("cancel job", write=True) as s:
            job = _lock_job(s, job_id)
            if job.status.terminal:
                raise JobFinishedError(f"job {job_id} is already {job.status.value}; there is nothing to cancel")
            if job.status is JobStatus.CANCELLING:
                return _job_record(job)
            new = JobStatus.CANCELLED if job.status is JobStatus.PENDING and job.owner is None else JobStatus.CANCELLING
            _change_job_status(s, job, new, None, message="cancellation requested")
            return _job_record(job)

    def is_cancel_requested(self, job_id: str) -> bool:
        """Whether the job is cancelling or cancelled. One indexed single-column read: poll it freely."""
        with self._tx("read job status") as s:
            status = s.scalar(select(Job.status).where(Job.id == job_id))
            if status is None:
                raise _job_not_found(job_id)
            return status in (JobStatus.CANCELLING, JobStatus.CANCELLED)

    def delete_job(self, job_id: str) -> JobDetail:
        """Delete a finished job and everything of it; return what was deleted (to remove its files).

        Raises :class:`JobRunningError` unless the job is in a terminal status.
        """
        with self._tx("delete job", write=True) as s:
            status = s.scalar(select(Job.status).where(Job.id == job_id).with_for_update())
            if status is None:
                raise _job_not_found(job_id)
            if not status.terminal:
                raise JobRunningError(f"job {job_id} is {status.value}: cancel it and let it finish before deleting")
            detail = _load_detail(s, job_id)
            s.execute(delete(Job).where(Job.id == job_id))  # children go by ON DELETE CASCADE
            return detail

    # Candidate runs --------------------------------------------------------------------------------
    def add_candidate_run(self, job_id: str, candidate: str) -> CandidateRunRecord:
        """The run of ``candidate`` in the job, created pending if it does not exist yet (idempotent).

        Raises :class:`JobFinishedError` when a new run would be added to a finished job.
        """
        with self._tx("add candidate run", write=True) as s:
            job = _lock_job(s, job_id)
            run = s.scalar(
                select(CandidateRun).where(CandidateRun.job_id == job_id, CandidateRun.candidate == candidate)
            )
            if run is None:
                if job.status.terminal:
                    raise JobFinishedError(f"job {job_id} is {job.status.value}: cannot add candidate {candidate!r}")
                run = CandidateRun(job_id=job_id, candidate=candidate, stage=CandidateStage.PENDING)
                s.add(run)
                s.flush()
            return _run_record(run)

    def set_candidate_stage(
        self, run_id: int, stage: CandidateStage, *, error: str | None = None
    ) -> CandidateRunRecord:
        """Move a candidate run to ``stage`` (transition-checked), keeping its first error.

        Leaving pending sets ``started_at``; a terminal stage sets ``finished_at`` and ``runtime_s``.
        """
        new = CandidateStage(stage)
        with self._tx("set candidate stage", write=True) as s:
            run = _lock_run(s, run_id)
            old = run.stage
            check_transition(f"candidate {run.candidate} of job {run.job_id}", old, new)
            _keep_first_error(run, error)
            if new != old:
                now = utcnow()
                run.stage = new
                if run.started_at is None and new is not CandidateStage.PENDING:
                    run.started_at = now
                if new.terminal:
                    _finish(run, now)
                _add_event(
                    s,
                    run.job_id,
                    EventKind.STAGE,
                    _change_message(f"candidate {run.candidate}", old, new, error),
                    stage=f"candidate:{run.candidate}",
                    data={"from": old.value, "to": new.value, "error": error},
                    ts=now,
                )
            return _run_record(run)

    def update_candidate_run(
        self, run_id: int, *, fence: StageLease | None = None, **fields: Any
    ) -> CandidateRunRecord:
        """Set some of ``deployment`` (JSON: base_url...), ``started_at``, ``finished_at``, ``runtime_s``.
        With ``fence``, only while that stage attempt still holds its lease (:class:`StaleAttemptError`)."""
        _check_fields("update_candidate_run", fields, _RUN_FIELDS)
        fields = _clean_values(fields)
        with self._tx("update candidate run", write=True) as s:
            run = _lock_run(s, run_id)
            _check_fence(s, fence)
            for name, value in fields.items():
                setattr(run, name, value)
            return _run_record(run)

    def upsert_evaluation(
        self, run_id: int, eval_type: str, *, fence: StageLease | None = None, **fields: Any
    ) -> EvaluationRecord:
        """Create or update the ``eval_type`` evaluation of a candidate run.

        Fields: ``status`` (transition-checked; running sets ``started_at``, a terminal status sets
        ``finished_at`` and ``runtime_s``), ``progress`` (0-100), ``done``, ``total``, ``eta_s``,
        ``scores``, ``artifact_path``, ``error`` (the first is kept), ``started_at``, ``finished_at``,
        ``runtime_s`` (explicit values win over the derived ones). With ``fence`` (the writing stage attempt's
        lease) nothing is written once that attempt was taken over: :class:`StaleAttemptError`.
        """
        _check_fields("upsert_evaluation", fields, _EVAL_FIELDS)
        fields = _clean_values(fields)
        with self._tx("upsert evaluation", write=True) as s:
            run = _lock_run(s, run_id)
            _check_fence(s, fence)
            ev = s.scalar(
                select(Evaluation).where(Evaluation.candidate_run_id == run_id, Evaluation.eval_type == eval_type)
            )
            if ev is None:
                ev = Evaluation(
                    candidate_run_id=run_id,
                    eval_type=eval_type,
                    status=TaskStatus.PENDING,
                    progress=0.0,
                    done=0,
                    scores={},
                )
                s.add(ev)
            _apply_task_fields(s, ev, fields, job_id=run.job_id, stage=f"candidate:{run.candidate}:{eval_type}")
            s.flush()
            return _eval_record(ev)

    def upsert_customization(
        self, run_id: int, *, fence: StageLease | None = None, **fields: Any
    ) -> CustomizationRecord:
        """Create or update the customization of a candidate run (same rules as :meth:`upsert_evaluation`).

        Fields: ``status``, ``progress``, ``epochs_completed``, ``total_epochs``, ``steps_completed``,
        ``total_steps``, ``loss``, ``tokens_per_s``, ``eta_s``, ``adapter_name``, ``adapter_path``,
        ``metrics``, ``error``, ``started_at``, ``finished_at``, ``runtime_s``; ``fence`` as there.
        """
        _check_fields("upsert_customization", fields, _CUSTOM_FIELDS)
        fields = _clean_values(fields)
        with self._tx("upsert customization", write=True) as s:
            run = _lock_run(s, run_id)
            _check_fence(s, fence)
            cu = s.scalar(select(Customization).where(Customization.candidate_run_id == run_id))
            if cu is None:
                cu = Customization(
                    candidate_run_id=run_id,
                    status=TaskStatus.PENDING,
                    progress=0.0,
                    epochs_completed=0,
                    steps_completed=0,
                    metrics={},
                )
                s.add(cu)
            _apply_task_fields(s, cu, fields, job_id=run.job_id, stage=f"candidate:{run.candidate}:customization")
            s.flush()
            return _custom_record(cu)

    def upsert_judge(self, job_id: str, **fields: Any) -> JudgeRecord:
        """Create or update the job's judge check: ``model``, ``base_url``, ``kind`` (remote, local,
        disabled), ``status`` (transition-checked), ``error`` (the first is kept)."""
        _check_fields("upsert_judge", fields, _JUDGE_FIELDS)
        if "kind" in fields and fields["kind"] not in _JUDGE_KINDS:
            raise ValueError(f"judge kind must be one of {sorted(_JUDGE_KINDS)}, got {fields['kind']!r}")
        with self._tx("upsert judge", write=True) as s:
            _lock_job(s, job_id)
            judge = s.scalar(select(JudgeRun).where(JudgeRun.job_id == job_id))
            if judge is None:
                judge = JudgeRun(job_id=job_id, kind="disabled", status=TaskStatus.PENDING)
                s.add(judge)
            _apply_task_fields(s, judge, fields, job_id=job_id, stage="judge", timed=False)
            s.flush()
            return _judge_record(judge)

    def set_datasets(
        self,
        job_id: str,
        datasets: Iterable[tuple[str, int, str | None, str | None]],
        *,
        fence: StageLease | None = None,
    ) -> list[DatasetRecord]:
        """Replace the job's datasets with ``(name, num_records, path, build_id)`` tuples (``fence``: only while
        that stage attempt holds its lease)."""
        rows = list(datasets)
        names = [r[0] for r in rows]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique, got {names}")
        with self._tx("set datasets", write=True) as s:
            _lock_job(s, job_id)
            _check_fence(s, fence)
            s.execute(delete(Dataset).where(Dataset.job_id == job_id))
            added = [
                Dataset(job_id=job_id, name=name, num_records=num, path=path, build_id=build_id)
                for name, num, path, build_id in rows
            ]
            s.add_all(added)
            s.flush()
            return sorted((_dataset_record(d) for d in added), key=lambda d: d.name)

    # Stages ----------------------------------------------------------------------------------------
    def get_stage(self, job_id: str, key: str) -> StageRecord | None:
        """The stage ``key`` of the job, or None if it was never started or finished."""
        with self._tx("get stage") as s:
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            return None if stage is None else _stage_record(stage)

    def list_stages(self, job_id: str) -> list[StageRecord]:
        """The job's stages in the order they were first recorded."""
        with self._tx("list stages") as s:
            return [
                _stage_record(st) for st in s.scalars(select(Stage).where(Stage.job_id == job_id).order_by(Stage.id))
            ]

    def start_stage(
        self,
        job_id: str,
        key: str,
        owner: str | None = None,
        *,
        attempt: int | None = None,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        max_attempts: int | None = None,
    ) -> StageRecord:
        """Start an attempt of the stage for ``owner``: mark it running, count one more attempt (the new
        lease's fencing token), take the lease (``heartbeat_at`` now) and clear the previous attempt's
        output and error (they stay in the events). Returns the record: running with the new lease, or
        *crashed* when ``max_attempts`` were used up by owners that died (the caller then runs nothing).

        Refused, writing nothing: a stage running under a live lease (its owner heartbeat within
        ``stale_after_s``) raises :class:`StageLeaseHeldError`, so a stage never runs twice at once; a
        delivery of an ``attempt`` that already ran (``attempts >= attempt``: a duplicate message) raises
        :class:`StaleAttemptError`. A completed, skipped or crashed stage raises
        :class:`IllegalTransitionError` (its output is what resuming relies on); a finished job raises
        :class:`JobFinishedError`. A running stage whose lease is stale (its worker died), or a failed or
        cancelled one (a retry), may start again.
        """
        with self._tx("start stage", write=True) as s:
            job = _lock_job(s, job_id)
            if job.status.terminal:
                raise JobFinishedError(f"job {job_id} is {job.status.value}: cannot start stage {key!r}")
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            if stage is None:
                stage = Stage(job_id=job_id, key=key, status=TaskStatus.PENDING, attempts=0)
                s.add(stage)
            elif stage.status in (TaskStatus.COMPLETED, TaskStatus.SKIPPED, TaskStatus.CRASHED):
                raise IllegalTransitionError(
                    f"stage {key} of job {job_id}",
                    stage.status.value,
                    TaskStatus.RUNNING.value,
                    frozenset(),
                )
            now = utcnow()
            if attempt is not None and stage.attempts >= attempt:
                raise StaleAttemptError(
                    f"stage {key} of job {job_id}: attempt {attempt} already ran (attempts: {stage.attempts})"
                )
            if stage.status is TaskStatus.RUNNING and _lease_live(stage, now, stale_after_s):
                raise StageLeaseHeldError(
                    f"stage {key} of job {job_id} runs as attempt {stage.attempts} of {stage.owner}, "
                    f"alive {(now - _last_beat(stage)).total_seconds():.1f} s ago: not started twice"
                )
            if (
                max_attempts is not None
                and stage.attempts >= max_attempts
                and stage.status in (TaskStatus.RUNNING, TaskStatus.PENDING)
            ):
                _crash_stage(s, stage, now, max_attempts)
                s.flush()
                return _stage_record(stage)
            stage.status = TaskStatus.RUNNING
            stage.attempts += 1
            stage.owner = owner
            stage.started_at = now
            stage.heartbeat_at = now
            stage.finished_at = None
            stage.output = None
            stage.error = None
            _add_event(
                s,
                job_id,
                EventKind.STAGE,
                f"stage {key} started (attempt {stage.attempts})",
                stage=key,
                data={"to": TaskStatus.RUNNING.value, "attempt": stage.attempts, "owner": owner},
                ts=now,
            )
            s.flush()
            return _stage_record(stage)

    def heartbeat_stage(self, lease: StageLease) -> bool:
        """Renew a running attempt's lease; False when it is no longer that attempt's (taken over or ended):
        the attempt should then stop, and its writes would be refused anyway."""
        stmt = (
            update(Stage)
            .where(
                Stage.job_id == lease.job_id,
                Stage.key == lease.key,
                Stage.attempts == lease.attempt,
                Stage.status == TaskStatus.RUNNING,
            )
            .values(heartbeat_at=utcnow())
        )
        return self._update_one("heartbeat stage", stmt)

    def reclaim_stage(
        self,
        job_id: str,
        key: str,
        *,
        stale_after_s: float,
        max_attempts: int,
        attempt: int | None = None,
        owner_dead: bool = False,
        cancelled: bool = False,
    ) -> StageRecord | None:
        """Take a running stage away from its dead owner; None (nothing written) unless it runs under a lease
        older than ``stale_after_s`` (or ``owner_dead``: the caller saw the owner exit), as ``attempt`` when
        given.

        The stage goes back to pending for another attempt, to *crashed* with the reason when its
        ``max_attempts`` are used up, or to cancelled when the job is being ``cancelled``. Its old owner, if
        it still lives, loses the lease: its heartbeats and fenced writes fail from now on.
        """
        with self._tx("reclaim stage", write=True) as s:
            _lock_job(s, job_id)
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            now = utcnow()
            if stage is None or stage.status is not TaskStatus.RUNNING:
                return None
            if attempt is not None and stage.attempts != attempt:
                return None
            if not owner_dead and _lease_live(stage, now, stale_after_s):
                return None
            silent = (now - _last_beat(stage)).total_seconds()
            if cancelled:
                new, error = TaskStatus.CANCELLED, f"job cancelled; its owner {stage.owner} had died"
            elif stage.attempts >= max_attempts:
                _crash_stage(s, stage, now, max_attempts)
                s.flush()
                return _stage_record(stage)
            else:
                new, error = TaskStatus.PENDING, None
            stage.status = new
            if new.terminal:
                stage.finished_at = now
                stage.error = error
            why = "exited" if owner_dead else f"silent for {silent:.1f} s"
            _add_event(
                s,
                job_id,
                EventKind.STAGE,
                f"stage {key}: attempt {stage.attempts} of {stage.owner} taken over (owner {why}): -> {new.value}",
                stage=key,
                data={"from": TaskStatus.RUNNING.value, "to": new.value, "attempt": stage.attempts, "error": error},
                ts=now,
            )
            s.flush()
            return _stage_record(stage)

    def finish_stage(
        self,
        job_id: str,
        key: str,
        status: TaskStatus,
        output: dict[str, Any] | None = None,
        error: str | None = None,
        *,
        fence: StageLease | None = None,
    ) -> StageRecord:
        """Record the end of a stage: ``status`` is completed, failed, cancelled, skipped or crashed.

        A stage that never started may be finished directly (e.g. skipped). Finishing again with the same
        status is a no-op; any other change of a finished stage raises :class:`IllegalTransitionError`.
        With ``fence`` (the attempt's lease), the stage must still be running that attempt, checked in this
        same transaction: a stale attempt raises :class:`StaleAttemptError` and writes nothing.
        """
        new = TaskStatus(status)
        if new not in TASK_TERMINAL:
            raise ValueError(f"finish_stage needs a terminal status ({sorted(TASK_TERMINAL)}), got {new.value!r}")
        with self._tx("finish stage", write=True) as s:
            _lock_job(s, job_id)
            stage = s.scalar(select(Stage).where(Stage.job_id == job_id, Stage.key == key))
            if fence is not None:
                _check_fence(s, fence, stage)
            if stage is None:
                stage = Stage(job_id=job_id, key=key, status=TaskStatus.PENDING, attempts=0)
                s.add(stage)
            old = stage.status
            check_transition(f"stage {key} of job {job_id}", old, new)
            if old != new:
                now = utcnow()
                stage.status = new
                stage.finished_at = now
                stage.output = output
                stage.error = error
                _add_event(
                    s,
                    job_id,
                    EventKind.STAGE,
                    _change_message(f"stage {key}", old, new, error),
                    stage=key,
                    data={"from": old.value, "to": new.value, "error": error},
                    ts=now,
                )
            s.flush()
            return _stage_record(stage)

    # Events ----------------------------------------------------------------------------------------
    def add_event(
        self,
        job_id: str,
        kind: EventKind | str,
        message: str,
        *,
        stage: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Append an event to the job's history."""
        with self._tx("add event", write=True) as s:
            if s.scalar(select(Job.id).where(Job.id == job_id)) is None:
                raise _job_not_found(job_id)
            ev = _add_event(s, job_id, kind, message, stage=stage, data=data)
            s.flush()
            return _event_record(ev)

    def list_events(self, job_id: str, *, after_id: int = 0, limit: int = 500) -> list[EventRecord]:
        """The job's events with an id above ``after_id``, oldest first (poll with the last id seen)."""
        with self._tx("list events") as s:
            events = list(
                s.scalars(
                    select(JobEvent)
                    .where(JobEvent.job_id == job_id, JobEvent.id > after_id)
                    .order_by(JobEvent.id)
                    .limit(limit)
                )
            )
            if not events and s.scalar(select(Job.id).where(Job.id == job_id)) is None:
                raise _job_not_found(job_id)
            return [_event_record(e) for e in events]

    # Recovery --------------------------------------------------------------------------------------
    def unfinished_jobs(self) -> list[JobRecord]:
        """Jobs that are pending, running or cancelling, oldest first (what a restarted service resumes)."""
        with self._tx("list unfinished jobs") as s:
            jobs = s.scalars(select(Job).where(Job.status.in_(sorted(JOB_UNFINISHED))).order_by(Job.created_at, Job.id))
            return [_job_record(j) for j in jobs]

    def claim_job(self, job_id: str, owner: str, *, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> bool:
        """Make ``owner`` the holder of an unfinished job; True if it now holds it.

        It wins when nobody holds the job, when it already does, or when the holder's heartbeat is older
        than ``stale_after_s``. One conditional UPDATE: of two racing claimants exactly one wins.
        """
        now = utcnow()
        stale = now - timedelta(seconds=stale_after_s)
        stmt = (
            update(Job)
            .where(
                Job.id == job_id,
                Job.status.in_(sorted(JOB_UNFINISHED)),
                or_(Job.owner.is_(None), Job.owner == owner, Job.heartbeat_at.is_(None), Job.heartbeat_at < stale),
            )
            .values(owner=owner, heartbeat_at=now, updated_at=now)
        )
        return self._update_one("claim job", stmt)

    def heartbeat(self, job_id: str, owner: str) -> bool:
        """Refresh ``owner``'s hold on the job; False if it no longer holds it (another worker took over)."""
        now = utcnow()
        stmt = update(Job).where(Job.id == job_id, Job.owner == owner).values(heartbeat_at=now)
        return self._update_one("heartbeat", stmt)

    def release_job(self, job_id: str, owner: str) -> bool:
        """Let go of the job; False if ``owner`` did not hold it."""
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.owner == owner)
            .values(owner=None, heartbeat_at=None, updated_at=utcnow())
        )
        return self._update_one("release job", stmt)

    def _update_one(self, what: str, stmt: Any) -> bool:
        with self._tx(what, write=True) as s:
            result: CursorResult[Any] = s.execute(stmt.execution_options(synchronize_session=False))  # type: ignore[assignment]
            return result.rowcount == 1

    # Summaries -------------------------------------------------------------------------------------
    def workloads(self) -> list[WorkloadSummary]:
        """One summary per (workload_id, client_id): how many jobs, and the newest job's id, status, time.

        Most recently active first.
        """
        group = (Job.workload_id, Job.client_id)
        ranked = select(
            Job.workload_id,
            Job.client_id,
            Job.id,
            Job.status,
            Job.created_at,
            func.row_number().over(partition_by=group, order_by=(Job.created_at.desc(), Job.id.desc())).label("rn"),
            func.count().over(partition_by=group).label("n"),
        ).subquery()
        stmt = (
            select(
                ranked.c.workload_id, ranked.c.client_id, ranked.c.n, ranked.c.id, ranked.c.status, ranked.c.created_at
            )
            .where(ranked.c.rn == 1)
            .order_by(ranked.c.created_at.desc(), ranked.c.workload_id, ranked.c.client_id)
        )
        with self._tx("summarize workloads") as s:
            return [
                WorkloadSummary(
                    workload_id=w, client_id=c, num_jobs=n, last_job_id=i, last_status=st, last_created_at=ts
                )
                for w, c, n, i, st, ts in s.execute(stmt)
            ]


# A connection the database dropped (a restart, a failover, pg_terminate_backend) fails the transaction that
# was using it; the pool reconnects on the next checkout. These methods are run once more then: each is one
# transaction that either committed or did not, and running it again is harmless (reads, conditional updates,
# transition-checked changes that are no-ops when repeated, fenced writes that refuse a second try). Creating
# a job and appending an event are left out: a retry after a commit whose answer was lost would double them.
_RETRIED_ON_DISCONNECT: Final = (
    "get_job",
    "job_detail",
    "list_jobs",
    "set_job_status",
    "update_job",
    "request_cancel",
    "is_cancel_requested",
    "add_candidate_run",
    "set_candidate_stage",
    "update_candidate_run",
    "upsert_evaluation",
    "upsert_customization",
    "upsert_judge",
    "set_datasets",
    "get_stage",
    "list_stages",
    "start_stage",
    "heartbeat_stage",
    "reclaim_stage",
    "finish_stage",
    "list_events",
    "unfinished_jobs",
    "claim_job",
    "heartbeat",
    "release_job",
    "workloads",
)


def _retry_on_disconnect(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, DBAPIError) and cause.connection_invalidated):
                raise
            logger.warning("job store at %s: connection lost in %s, trying once more", self.url, method.__name__)
            return method(self, *args, **kwargs)

    return wrapper


for _name in _RETRIED_ON_DISCONNECT:
    setattr(JobStore, _name, _retry_on_disconnect(getattr(JobStore, _name)))


# Helpers (inside a transaction) --------------------------------------------------------------------
def _reason(exc: DBAPIError) -> str:
    return str(exc.orig).strip() if exc.orig is not None else str(exc)


def _job_not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(f"job {job_id!r} not found")


def _lock_job(s: Session, job_id: str) -> Job:
    # FOR NO KEY UPDATE: excludes other status changes of the job, yet lets other transactions insert
    # rows that reference it (events, stages), which only need a key-share lock.
    job = s.scalar(select(Job).where(Job.id == job_id).with_for_update(key_share=True))
    if job is None:
        raise _job_not_found(job_id)
    return job


def _last_beat(stage: Stage) -> datetime:
    """When the stage's owner was last heard of (a row from before leases has only ``started_at``)."""
    return stage.heartbeat_at or stage.started_at or utcnow()


def _lease_live(stage: Stage, now: datetime, stale_after_s: float) -> bool:
    return now - _last_beat(stage) < timedelta(seconds=stale_after_s)


def _crash_stage(s: Session, stage: Stage, now: datetime, max_attempts: int) -> None:
    """End a stage whose owners died on every attempt allowed: *crashed*, with who died, never stuck."""
    error = (
        f"stage {stage.key}: its owner died on all {stage.attempts} attempt(s) (last owner {stage.owner}); "
        f"executor.stage_attempts is {max_attempts}"
    )
    old = stage.status
    stage.status = TaskStatus.CRASHED
    stage.finished_at = now
    stage.error = error
    _add_event(
        s,
        stage.job_id,
        EventKind.STAGE,
        _change_message(f"stage {stage.key}", old, TaskStatus.CRASHED, error),
        stage=stage.key,
        data={"from": old.value, "to": TaskStatus.CRASHED.value, "error": error},
        ts=now,
    )


def _check_fence(s: Session, fence: StageLease | None, stage: Stage | None = None) -> None:
    """Refuse a write of a stage attempt that no longer holds its lease. The stage row is read locked (FOR
    UPDATE on PostgreSQL; SQLite serializes writers), so a takeover cannot slip between check and write."""
    if fence is None:
        return
    if stage is None:
        stage = s.scalar(select(Stage).where(Stage.job_id == fence.job_id, Stage.key == fence.key).with_for_update())
    if stage is None or stage.status is not TaskStatus.RUNNING or stage.attempts != fence.attempt:
        now = "absent" if stage is None else f"{stage.status.value}, attempt {stage.attempts} of {stage.owner}"
        raise StaleAttemptError(
            f"stage {fence.key} of job {fence.job_id}: attempt {fence.attempt} of {fence.owner} lost its lease "
            f"(the stage is {now}); its write was refused"
        )


def _lock_run(s: Session, run_id: int) -> CandidateRun:
    run = s.scalar(select(CandidateRun).where(CandidateRun.id == run_id).with_for_update(key_share=True))
    if run is None:
        raise JobNotFoundError(f"candidate run {run_id} not found")
    return run


def _load_detail(s: Session, job_id: str) -> JobDetail:
    # Four queries whatever the job's size: the job joined with its judge, then its datasets, its
    # candidate runs joined with their customizations, and all their evaluations.
    stmt = (
        select(Job)
        .where(Job.id == job_id)
        .options(
            joinedload(Job.judge),
            selectinload(Job.datasets),
            selectinload(Job.candidate_runs).options(
                joinedload(CandidateRun.customization), selectinload(CandidateRun.evaluations)
            ),
        )
        .execution_options(populate_existing=True)
    )
    job = s.scalar(stmt)
    if job is None:
        raise _job_not_found(job_id)
    return JobDetail(
        job=_job_record(job),
        candidates=tuple(_run_detail(run) for run in job.candidate_runs),
        judge=None if job.judge is None else _judge_record(job.judge),
        datasets=tuple(_dataset_record(d) for d in job.datasets),
    )


def _change_job_status(s: Session, job: Job, new: JobStatus, error: str | None, message: str | None = None) -> None:
    old = job.status
    check_transition(f"job {job.id}", old, new)
    now = utcnow()
    changed_error = _keep_first_error(job, error)
    if new == old:
        if changed_error:
            job.updated_at = now
        return
    job.status = new
    job.updated_at = now
    if new is JobStatus.RUNNING and job.started_at is None:
        job.started_at = now
    if new.terminal:
        job.finished_at = now
        if new is JobStatus.COMPLETED:
            job.progress = 100.0
    text_ = _change_message("job", old, new, error)
    _add_event(
        s,
        job.id,
        EventKind.STATUS,
        f"{message}: {text_}" if message else text_,
        data={"from": old.value, "to": new.value, "error": error},
        ts=now,
    )


def _change_message(what: str, old: Any, new: Any, error: str | None) -> str:
    return f"{what}: {old} -> {new}" + (f" ({error})" if error else "")


def _keep_first_error(obj: Any, error: str | None) -> bool:
    """Store ``error`` unless ``obj`` has one already: the first error is the cause."""
    if error and obj.error is None:
        obj.error = error
        return True
    return False


def _finish(obj: Any, now: datetime) -> None:
    obj.finished_at = now
    if obj.started_at is not None:
        obj.runtime_s = (now - obj.started_at).total_seconds()


def _apply_task_fields(
    s: Session, obj: Any, fields: dict[str, Any], *, job_id: str, stage: str, timed: bool = True
) -> None:
    """Apply an upsert's fields to an evaluation, customization or judge row (status checked, first
    error kept, timestamps derived from status changes unless given explicitly)."""
    fields = dict(fields)
    error = fields.pop("error", None)
    _keep_first_error(obj, error)
    if "status" in fields:
        new = TaskStatus(fields.pop("status"))
        old = obj.status
        check_transition(f"{stage} of job {job_id}", old, new)
        if new != old:
            now = utcnow()
            obj.status = new
            if timed and new is TaskStatus.RUNNING and obj.started_at is None:
                obj.started_at = now
            if timed and new.terminal:
                _finish(obj, now)
            _add_event(
                s,
                job_id,
                EventKind.STAGE,
                _change_message(stage, old, new, error),
                stage=stage,
                data={"from": old.value, "to": new.value, "error": error},
                ts=now,
            )
    for name, value in fields.items():
        setattr(obj, name, value)


def _add_event(
    s: Session,
    job_id: str,
    kind: EventKind | str,
    message: str,
    *,
    stage: str | None = None,
    data: dict[str, Any] | None = None,
    ts: datetime | None = None,
) -> JobEvent:
    ev = JobEvent(job_id=job_id, ts=ts or utcnow(), kind=str(kind), stage=stage, message=message, data=data)
    s.add(ev)
    return ev


def _check_fields(method: str, fields: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise TypeError(f"{method}() got unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _clean_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with datetimes in UTC (what the database gives back, so records agree with reads);
    refuse values the database would store wrongly: progress outside 0-100, naive datetimes."""
    progress = fields.get("progress")
    if progress is not None and not 0.0 <= progress <= 100.0:
        raise ValueError(f"progress must be between 0 and 100, got {progress}")
    clean = dict(fields)
    for name, value in fields.items():
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name}: naive datetime {value.isoformat()}; give a timezone-aware one")
            clean[name] = value.astimezone(UTC)
    return clean


# ORM rows -> records --------------------------------------------------------------------------------
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclass_fields(cls))
    return names


def _columns(cls: type[Any], row: object) -> dict[str, Any]:
    """The values of ``row`` for the fields of record class ``cls`` (records name fields after columns)."""
    return {name: getattr(row, name) for name in _field_names(cls)}


def _job_record(j: Job) -> JobRecord:
    return JobRecord(**_columns(JobRecord, j))


def _run_record(r: CandidateRun) -> CandidateRunRecord:
    return CandidateRunRecord(**_columns(CandidateRunRecord, r))


def _run_detail(r: CandidateRun) -> CandidateRunDetail:
    return CandidateRunDetail(
        **_columns(CandidateRunRecord, r),
        evaluations=tuple(_eval_record(e) for e in r.evaluations),
        customization=None if r.customization is None else _custom_record(r.customization),
    )


def _eval_record(e: Evaluation) -> EvaluationRecord:
    return EvaluationRecord(**_columns(EvaluationRecord, e))


def _custom_record(c: Customization) -> CustomizationRecord:
    return CustomizationRecord(**_columns(CustomizationRecord, c))


def _judge_record(j: JudgeRun) -> JudgeRecord:
    return JudgeRecord(**_columns(JudgeRecord, j))


def _dataset_record(d: Dataset) -> DatasetRecord:
    return DatasetRecord(**_columns(DatasetRecord, d))


def _stage_record(st: Stage) -> StageRecord:
    return StageRecord(**_columns(StageRecord, st))


def _event_record(e: JobEvent) -> EventRecord:
    return EventRecord(**_columns(EventRecord, e))


__all__ = [
    "DEFAULT_STALE_AFTER_S",
    "JobStore",
    "alembic_config",
    "default_url",
    "open_job_store",
]
