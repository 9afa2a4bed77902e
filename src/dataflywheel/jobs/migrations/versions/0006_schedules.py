"""Schedules: a workload's jobs started on a cron expression, after N new records, or on drift
(``fw_schedules``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "fw_schedules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workload_id", sa.String(length=255), nullable=False),
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("cron", sa.String(length=255), nullable=True),
        sa.Column("min_new_records", sa.Integer(), nullable=True),
        sa.Column("on_drift", sa.Boolean(), nullable=False),
        sa.Column("job_config", _JSON, nullable=False),
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
        sa.Column("drift", _JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fw_schedules"),
        sa.UniqueConstraint("workload_id", "client_id", name="uq_fw_schedules_workload_id_client_id"),
    )
    op.create_index("ix_fw_schedules_next_due", "fw_schedules", ["next_due"])


def downgrade() -> None:
    op.drop_index("ix_fw_schedules_next_due", table_name="fw_schedules")
    op.drop_table("fw_schedules")
