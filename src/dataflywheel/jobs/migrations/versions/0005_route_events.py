"""Route changes of the logging proxy: ``fw_route_events`` (promotions and rollbacks of a workload's route).

Created 2026-12-01.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dataflywheel.jobs.migrations.schema import create_keyed_table, workload_key

revision = "0005"
down_revision: str | None = "0003"


def upgrade() -> None:
    create_keyed_table(
        "fw_route_events",
        *workload_key(),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=True),
        sa.Column("canary_share", sa.Float(), nullable=True),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=1024), nullable=True),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("candidate", sa.String(length=255), nullable=True),
        sa.Column("eval_type", sa.String(length=64), nullable=True),
        sa.Column("override", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["fw_jobs.id"], name="fk_fw_route_events_job_id_fw_jobs", ondelete="SET NULL"
        ),
    )
    op.create_index(
        "ix_fw_route_events_workload_id_client_id_id", "fw_route_events", ["workload_id", "client_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_fw_route_events_workload_id_client_id_id", table_name="fw_route_events")
    op.drop_table("fw_route_events")
