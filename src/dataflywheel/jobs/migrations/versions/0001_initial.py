"""The job store's first schema: jobs, candidate runs, evaluations, customizations, judge runs, datasets,
stages and events.

Written by hand and frozen: it uses plain SQLAlchemy types, not the models of ``tables.py``, so later
changes to the models cannot change what this migration creates. ``tests/jobs/test_migrations.py`` checks
that the migrated database matches the models.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
STATUS = sa.String(32)
ID = sa.String(32)


def _job_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["job_id"], ["fw_jobs.id"], name=f"fk_{table}_job_id_fw_jobs", ondelete="CASCADE")


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["candidate_run_id"],
        ["fw_candidate_runs.id"],
        name=f"fk_{table}_candidate_run_id_fw_candidate_runs",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "fw_jobs",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", STATUS, nullable=False),
        sa.Column("workload_id", sa.String(255), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
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
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("heartbeat_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fw_jobs"),
    )
    op.create_index("ix_fw_jobs_created_at_id", "fw_jobs", ["created_at", "id"])
    op.create_index("ix_fw_jobs_client_id_created_at", "fw_jobs", ["client_id", "created_at"])
    op.create_index("ix_fw_jobs_workload_id_created_at", "fw_jobs", ["workload_id", "created_at"])
    op.create_index("ix_fw_jobs_status", "fw_jobs", ["status"])

    op.create_table(
        "fw_candidate_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("candidate", sa.String(255), nullable=False),
        sa.Column("stage", STATUS, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("runtime_s", sa.Float(), nullable=True),
        sa.Column("deployment", JSON, nullable=True),
        _job_fk("fw_candidate_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_fw_candidate_runs"),
        sa.UniqueConstraint("job_id", "candidate", name="uq_fw_candidate_runs_job_id_candidate"),
    )

    op.create_table(
        "fw_evaluations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_run_id", sa.Integer(), nullable=False),
        sa.Column("eval_type", sa.String(64), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("scores", JSON, nullable=False),
        sa.Column("artifact_path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("runtime_s", sa.Float(), nullable=True),
        _run_fk("fw_evaluations"),
        sa.PrimaryKeyConstraint("id", name="pk_fw_evaluations"),
        sa.UniqueConstraint("candidate_run_id", "eval_type", name="uq_fw_evaluations_candidate_run_id_eval_type"),
    )

    op.create_table(
        "fw_customizations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("candidate_run_id", sa.Integer(), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("epochs_completed", sa.Integer(), nullable=False),
        sa.Column("total_epochs", sa.Integer(), nullable=True),
        sa.Column("steps_completed", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("eta_s", sa.Float(), nullable=True),
        sa.Column("adapter_name", sa.String(255), nullable=True),
        sa.Column("adapter_path", sa.Text(), nullable=True),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("runtime_s", sa.Float(), nullable=True),
        _run_fk("fw_customizations"),
        sa.PrimaryKeyConstraint("id", name="pk_fw_customizations"),
        sa.UniqueConstraint("candidate_run_id", name="uq_fw_customizations_candidate_run_id"),
    )

    op.create_table(
        "fw_judge_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _job_fk("fw_judge_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_fw_judge_runs"),
        sa.UniqueConstraint("job_id", name="uq_fw_judge_runs_job_id"),
    )

    op.create_table(
        "fw_datasets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("num_records", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("build_id", sa.String(64), nullable=True),
        _job_fk("fw_datasets"),
        sa.PrimaryKeyConstraint("id", name="pk_fw_datasets"),
        sa.UniqueConstraint("job_id", "name", name="uq_fw_datasets_job_id_name"),
    )

    op.create_table(
        "fw_stages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("output", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        _job_fk("fw_stages"),
        sa.PrimaryKeyConstraint("id", name="pk_fw_stages"),
        sa.UniqueConstraint("job_id", "key", name="uq_fw_stages_job_id_key"),
    )

    op.create_table(
        "fw_job_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", ID, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", JSON, nullable=True),
        _job_fk("fw_job_events"),
        sa.PrimaryKeyConstraint("id", name="pk_fw_job_events"),
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
