"""What the migrations write again and again: the revision-independent column types, the integer key, the
job and candidate-run references, the named unique constraints and the columns of a timed task.

Frozen like the migrations that use it: what these return is part of the schema those revisions created, so
none of them may change (a new convention gets a new function). Plain SQLAlchemy types, not the models of
``tables.py``, for the same reason.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
STATUS = sa.String(32)
ID = sa.String(32)
"""A job id (32 hex digits)."""
NAME = sa.String(255)


def create_keyed_table(name: str, *items: SchemaItem) -> None:
    """Create the table ``name``: an autoincrement integer ``id`` (its primary key), then ``items``."""
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *items,
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
    )


def workload_key() -> tuple[sa.Column[str], sa.Column[str]]:
    """The workload and client a row belongs to."""
    return sa.Column("workload_id", NAME, nullable=False), sa.Column("client_id", NAME, nullable=False)


def job_id() -> sa.Column[str]:
    """The job a row of a job's child belongs to (see :func:`job_fk`)."""
    return sa.Column("job_id", ID, nullable=False)


def job_fk(table: str) -> sa.ForeignKeyConstraint:
    """The reference of a job's child (deleted with the job)."""
    return sa.ForeignKeyConstraint(["job_id"], ["fw_jobs.id"], name=f"fk_{table}_job_id_fw_jobs", ondelete="CASCADE")


def run_fk(table: str) -> sa.ForeignKeyConstraint:
    """The reference of a candidate run's child (deleted with the run)."""
    return sa.ForeignKeyConstraint(
        ["candidate_run_id"],
        ["fw_candidate_runs.id"],
        name=f"fk_{table}_candidate_run_id_fw_candidate_runs",
        ondelete="CASCADE",
    )


def unique(table: str, *columns: str) -> sa.UniqueConstraint:
    """The unique constraint of ``columns``, named as ``tables.NAMING_CONVENTION`` names it."""
    return sa.UniqueConstraint(*columns, name=f"uq_{table}_{'_'.join(columns)}")


def timed_columns() -> tuple[sa.Column[str], sa.Column[object], sa.Column[object], sa.Column[float]]:
    """The first error, start, end and duration of a task (a candidate run, an evaluation, a customization)."""
    return (
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("runtime_s", sa.Float(), nullable=True),
    )
