"""The job store's first schema: jobs, candidate runs, evaluations, customizations, judge runs, datasets,
stages and events.

Written by hand and frozen: it uses plain SQLAlchemy types (:mod:`..schema`), not the models of ``tables.py``,
so later changes to the models cannot change what this migration creates. ``tests/jobs/test_migrations.py``
checks that the migrated database matches the models.

Created 2025-01-01.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from dataflywheel.jobs.migrations.schema import (
    ID,
    JSON,
    NAME,
    STATUS,
    TS,
    create_keyed_table,
    job_fk,
    job_id,
    run_fk,
    timed_columns,
    unique,
    workload_key,
)

revision = "0001"
down_revision: str | None = None


def _run_task(table: str, *columns: sa.Column[Any], key: sa.Column[str] | None = None) -> None:
    """A task of a candidate run, one per run (and ``key``): its status, progress, ``columns`` and timing."""
    keys = () if key is None else (key,)
    create_keyed_table(
        table,
        sa.Column("candidate_run_id", sa.Integer(), nullable=False),
        *keys,
        sa.Column("status", STATUS, nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        *columns,
        *timed_columns(),
        run_fk(table),
        unique(table, "candidate_run_id", *(k.name for k in keys)),
    )


def _job_child(table: str, unique_by: tuple[str, ...] | None, *columns: sa.Column[Any]) -> None:
    """A table of rows that belong to a job (deleted with it), one per job and ``unique_by`` unless None."""
    create_keyed_table(
        table,
        job_id(),
        *columns,
        job_fk(table),
        *(() if unique_by is None else (unique(table, "job_id", *unique_by),)),
    )


def upgrade() -> None:
    op.create_table(
        "fw_jobs",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", STATUS, nullable=False),
        *workload_key(),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("num_records", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("owner", NAME, nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fw_jobs"),
    )
    op.create_index("ix_fw_jobs_created_at_id", "fw_jobs", ["created_at", "id"])
    op.create_index("ix_fw_jobs_client_id_created_at", "fw_jobs", ["client_id", "created_at"])
    op.create_index("ix_fw_jobs_workload_id_created_at", "fw_jobs", ["workload_id", "created_at"])
    op.create_index("ix_fw_jobs_status", "fw_jobs", ["status"])

    _job_child(
        "fw_candidate_runs",
        ("candidate",),
        sa.Column("candidate", NAME, nullable=False),
        sa.Column("stage", STATUS, nullable=False),
        *timed_columns(),
        sa.Column("deployment", JSON, nullable=True),
    )

    _run_task(
        "fw_evaluations",
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=True),
        key=sa.Column("eval_type", sa.String(64), nullable=False),
    )

    _run_task(
        "fw_customizations",
        sa.Column("epochs_completed", sa.Integer(), nullable=False),
        sa.Column("total_epochs", sa.Integer(), nullable=True),
        sa.Column("steps_completed", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("adapter_name", NAME, nullable=True),
        sa.Column("adapter_path", sa.Text(), nullable=True),
        sa.Column("metrics", JSON, nullable=False),
    )

    _job_child(
        "fw_judge_runs",
        (),
        sa.Column("model", NAME, nullable=True),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )

    _job_child(
        "fw_datasets",
        ("name",),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("num_records", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("build_id", sa.String(64), nullable=True),
    )

    _job_child(
        "fw_stages",
        ("key",),
        sa.Column("key", NAME, nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("owner", NAME, nullable=True),
    )

    _job_child(
        "fw_job_events",
        None,
        sa.Column("ts", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("stage", NAME, nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=True),
    )
    op.create_index("ix_fw_job_events_job_id_id", "fw_job_events", ["job_id", "id"])


def downgrade() -> None:
    for table in (
        "fw_job_events",
        "fw_stages",
        "fw_datasets",
        "fw_judge_runs",
        "fw_customizations",
        "fw_evaluations",
        "fw_candidate_runs",
    ):
        op.drop_table(table)
    for index in (
        "ix_fw_jobs_status",
        "ix_fw_jobs_workload_id_created_at",
        "ix_fw_jobs_client_id_created_at",
        "ix_fw_jobs_created_at_id",
    ):
        op.drop_index(index, table_name="fw_jobs")
    op.drop_table("fw_jobs")
