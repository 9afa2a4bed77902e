"""Schedules: a workload's jobs started on a cron expression, after N new records, or on drift
(``fw_schedules``).

Created 2026-12-02.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dataflywheel.jobs.migrations.schema import JSON, create_keyed_table, unique, workload_key

revision = "0006"
down_revision: str | None = "0005"


def upgrade() -> None:
    create_keyed_table(
        "fw_schedules",
        *workload_key(),
        sa.Column("cron", sa.String(length=255), nullable=True),
        sa.Column("min_new_records", sa.Integer(), nullable=True),
        sa.Column("on_drift", sa.Boolean(), nullable=False),
        sa.Column("job_config", JSON, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("records_seen", sa.Integer(), nullable=False),
        sa.Column("last_fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_trigger", sa.String(length=32), nullable=True),
        sa.Column("last_job_id", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("drift_checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("drift", JSON, nullable=True),
        unique("fw_schedules", "workload_id", "client_id"),
    )
    op.create_index("ix_fw_schedules_next_due", "fw_schedules", ["next_due"])


def downgrade() -> None:
    op.drop_index("ix_fw_schedules_next_due", table_name="fw_schedules")
    op.drop_table("fw_schedules")
