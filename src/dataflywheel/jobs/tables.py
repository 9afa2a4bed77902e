"""ORM models of the job store (tables prefixed ``fw_``).

The schema is created and changed only by the Alembic migrations in ``migrations/versions``; a test checks
that they produce exactly these tables. Conventions:

* Status columns are plain strings (:class:`StrEnumType`), not database enums, so a new status needs no
  migration; the enums of :mod:`dataflywheel.jobs.status` are the vocabulary.
* Timestamps are timezone-aware UTC (:class:`UTCDateTime`); SQLite, which has no time zones, stores UTC.
* JSON columns are JSONB on PostgreSQL.
* Children reference their job with ``ON DELETE CASCADE``: deleting a job is one ``DELETE``.
* Relationships are ``lazy="raise"``: every read says what it loads, so no query runs by surprise
  (the N+1 pattern that would make a job's detail slow).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from dataflywheel.jobs.status import CandidateStage, JobKind, JobStatus, ScheduleTrigger, TaskStatus
from dataflywheel.records.jsonvalue import JsonObject

# Explicit constraint names, the same on every database, so migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
"""JSON, stored as JSONB on PostgreSQL."""

_E = TypeVar("_E", bound=StrEnum)

# Column places (``sort_order``; the others are 0) of the mixins' columns and of the columns between them, so
# the models list their columns as the migrations create them.
_KEY = -3
_SUBKEY = -2
_HEAD = -1
_TAIL = 1


class StrEnumType(TypeDecorator[_E], Generic[_E]):
    """A :class:`~enum.StrEnum` stored as its value in a ``VARCHAR(32)``."""

    impl = String(32)
    cache_ok = True

    def __init__(self, enum_cls: type[_E]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: _E | str | None, dialect: Dialect) -> str | None:
        # Validate plain strings too: a typo must not reach the database.
        return None if value is None else self.enum_cls(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> _E | None:
        return None if value is None else self.enum_cls(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, always returned in UTC. Naive datetimes are refused (ambiguous)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give a timezone-aware one")
        value = value.astimezone(UTC)
        # SQLite keeps text without an offset; strip it so every stored value has the same form and
        # text order equals time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_job_id() -> str:
    """A fresh job id: 32 hex digits (uuid4)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    """Declarative base of the job store's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _Timed:
    """The first error, start, end and duration of a candidate run or of its tasks (they come last)."""

    error: Mapped[str | None] = mapped_column(Text, sort_order=_TAIL)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, sort_order=_TAIL)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, sort_order=_TAIL)
    runtime_s: Mapped[float | None] = mapped_column(Float, sort_order=_TAIL)


class _JobChild:
    """A row that belongs to a job (deleted with it); its own key and the job's come first."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=_KEY)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("fw_jobs.id", ondelete="CASCADE"), sort_order=_KEY)


class _RunTask(_Timed):
    """A task of a candidate run (an evaluation, the customization): its status and progress come first."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True, sort_order=_KEY)
    candidate_run_id: Mapped[int] = mapped_column(
        ForeignKey("fw_candidate_runs.id", ondelete="CASCADE"), sort_order=_KEY
    )
    status: Mapped[TaskStatus] = mapped_column(StrEnumType(TaskStatus), default=TaskStatus.PENDING, sort_order=_HEAD)
    progress: Mapped[float] = mapped_column(Float, default=0.0, sort_order=_HEAD)


class Job(Base):
    """A flywheel (or feedback-loop) job: one request, its configuration overrides, status and result."""

    __tablename__ = "fw_jobs"
    __table_args__ = (
        # Listing reads newest first; each filter has an index that already yields that order.
        Index("ix_fw_jobs_created_at_id", "created_at", "id"),
        Index("ix_fw_jobs_client_id_created_at", "client_id", "created_at"),
        Index("ix_fw_jobs_workload_id_created_at", "workload_id", "created_at"),
        Index("ix_fw_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[JobKind] = mapped_column(StrEnumType(JobKind), default=JobKind.FLYWHEEL)
    workload_id: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[JobStatus] = mapped_column(StrEnumType(JobStatus), default=JobStatus.PENDING)
    config: Mapped[JsonObject] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    error: Mapped[str | None] = mapped_column(Text)
    num_records: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[JsonObject | None] = mapped_column(JSONType)
    owner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    candidate_runs: Mapped[list[CandidateRun]] = relationship(
        back_populates="job", order_by="CandidateRun.id", passive_deletes=True, lazy="raise"
    )
    judge: Mapped[JudgeRun | None] = relationship(passive_deletes=True, lazy="raise")
    datasets: Mapped[list[Dataset]] = relationship(order_by="Dataset.name", passive_deletes=True, lazy="raise")


class CandidateRun(_JobChild, _Timed, Base):
    """One candidate model inside a job: its stage and its deployment."""

    __tablename__ = "fw_candidate_runs"
    __table_args__ = (UniqueConstraint("job_id", "candidate"),)

    candidate: Mapped[str] = mapped_column(String(255))
    stage: Mapped[CandidateStage] = mapped_column(StrEnumType(CandidateStage), default=CandidateStage.PENDING)
    deployment: Mapped[JsonObject | None] = mapped_column(JSONType, sort_order=_TAIL + 1)

    job: Mapped[Job] = relationship(back_populates="candidate_runs", lazy="raise")
    evaluations: Mapped[list[Evaluation]] = relationship(order_by="Evaluation.id", passive_deletes=True, lazy="raise")
    customization: Mapped[Customization | None] = relationship(passive_deletes=True, lazy="raise")


class Evaluation(_RunTask, Base):
    """One evaluation of a candidate (``base-eval``, ``icl-eval``, ``customized-eval``)."""

    __tablename__ = "fw_evaluations"
    __table_args__ = (UniqueConstraint("candidate_run_id", "eval_type"),)

    eval_type: Mapped[str] = mapped_column(String(64), sort_order=_SUBKEY)
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer)
    eta_s: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[JsonObject] = mapped_column(JSONType, default=dict)
    artifact_path: Mapped[str | None] = mapped_column(Text)


class Customization(_RunTask, Base):
    """The LoRA fine-tuning of a candidate (at most one per candidate run)."""

    __tablename__ = "fw_customizations"
    __table_args__ = (UniqueConstraint("candidate_run_id"),)

    epochs_completed: Mapped[int] = mapped_column(Integer, default=0)
    total_epochs: Mapped[int | None] = mapped_column(Integer)
    steps_completed: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    adapter_name: Mapped[str | None] = mapped_column(String(255))
    adapter_path: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[JsonObject] = mapped_column(JSONType, default=dict)


class JudgeRun(_JobChild, Base):
    """The check of a job's LLM judge (at most one per job)."""

    __tablename__ = "fw_judge_runs"
    __table_args__ = (UniqueConstraint("job_id"),)

    model: Mapped[str | None] = mapped_column(String(255))
    base_url: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16), default="disabled")
    """``remote``, ``local`` or ``disabled``."""
    status: Mapped[TaskStatus] = mapped_column(StrEnumType(TaskStatus), default=TaskStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text)


class Dataset(_JobChild, Base):
    """A dataset a job built (``eval``, ``icl``, ``train``, ``val``)."""

    __tablename__ = "fw_datasets"
    __table_args__ = (UniqueConstraint("job_id", "name"),)

    name: Mapped[str] = mapped_column(String(32))
    num_records: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str | None] = mapped_column(Text)
    build_id: Mapped[str | None] = mapped_column(String(64))


class Stage(_JobChild, Base):
    """A workflow stage of a job (``datasets``, ``judge``, ``candidate:smollm2:base-eval``...).

    The workflow records each stage's status and output here, so a re-queued job skips what finished.
    """

    __tablename__ = "fw_stages"
    __table_args__ = (UniqueConstraint("job_id", "key"),)

    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[TaskStatus] = mapped_column(StrEnumType(TaskStatus), default=TaskStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    output: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The running attempt's lease: refreshed by its owner every ``executor.heartbeat_s``; older than
    ``executor.stale_after_s``, the owner counts as dead and the stage may be taken over. ``attempts`` is
    the lease's fencing token."""


class JobEvent(_JobChild, Base):
    """One line of a job's history (append-only)."""

    __tablename__ = "fw_job_events"
    # (job_id, id): a job's events in order, and "events after id N", from one index.
    __table_args__ = (Index("ix_fw_job_events_job_id_id", "job_id", "id"),)

    ts: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[JsonObject | None] = mapped_column(JSONType)


class Schedule(Base):
    """When a workload's next job is started by itself: on a cron expression, after ``min_new_records`` new
    log records, or when its logs drift (:mod:`dataflywheel.schedule`); at most one per workload and client.

    Firing is claimed with a conditional ``UPDATE ... WHERE generation = :seen`` (``generation`` is the
    fencing token of firings), so of two API processes ticking at once exactly one fires.
    """

    __tablename__ = "fw_schedules"
    __table_args__ = (UniqueConstraint("workload_id", "client_id"), Index("ix_fw_schedules_next_due", "next_due"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload_id: Mapped[str] = mapped_column(String(255))
    client_id: Mapped[str] = mapped_column(String(255))
    cron: Mapped[str | None] = mapped_column(String(255))
    """A five-field cron expression, in UTC; None: no time trigger."""
    min_new_records: Mapped[int | None] = mapped_column(Integer)
    """Fire once this many records were logged since the last firing; None: no count trigger."""
    on_drift: Mapped[bool] = mapped_column(Boolean, default=False)
    job_config: Mapped[JsonObject] = mapped_column(JSONType, default=dict)
    """The overrides of the jobs it starts (as ``POST /api/jobs`` takes them)."""
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    next_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the cron expression next comes due; None without one."""
    generation: Mapped[int] = mapped_column(Integer, default=0)
    records_seen: Mapped[int] = mapped_column(Integer, default=0)
    """The workload's record count when it last fired (or was created): the baseline of new records."""
    last_fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_trigger: Mapped[ScheduleTrigger | None] = mapped_column(StrEnumType(ScheduleTrigger))
    last_job_id: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    """Why the last firing started no job (a job config no longer valid, the store down), or None."""
    drift_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drift: Mapped[JsonObject | None] = mapped_column(JSONType)
    """The last drift report (``on_drift``), as :class:`~dataflywheel.drift.report.DriftReport` serializes it."""


# Registered on Base.metadata with the tables above (the migrations and their test compare against it).
from dataflywheel.jobs import route_tables as _route_tables  # noqa: E402, F401
