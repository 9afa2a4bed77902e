"""Stage leases: ``fw_stages.heartbeat_at``, refreshed by the owner of a running attempt.

With ``attempts`` as the fencing token, it lets any process tell a live attempt from a dead one, so a stage
is taken over within ``executor.stale_after_s`` of its owner's death and never runs twice at once.

Created 2026-11-20.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"


def upgrade() -> None:
    with op.batch_alter_table("fw_stages") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fw_stages") as batch:
        batch.drop_column("heartbeat_at")
