"""The feedback loop's job kind and stage are named ``feedback`` (they were ``curation`` and ``curate``,
names the dataset build uses for something else).

Data only: jobs of kind ``curation`` become ``feedback``, their stage ``curate`` becomes ``feedback`` (so a
job in flight resumes from it). Stored ``curation`` values written by an older process still load
(:class:`~dataflywheel.jobs.status.JobKind` maps them).

Created 2026-12-01.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision: str | None = "0002"


def upgrade() -> None:
    op.execute("UPDATE fw_jobs SET kind = 'feedback' WHERE kind = 'curation'")
    op.execute(
        "UPDATE fw_stages SET key = 'feedback' WHERE key = 'curate'"
        " AND job_id IN (SELECT id FROM fw_jobs WHERE kind = 'feedback')"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE fw_stages SET key = 'curate' WHERE key = 'feedback'"
        " AND job_id IN (SELECT id FROM fw_jobs WHERE kind = 'feedback')"
    )
    op.execute("UPDATE fw_jobs SET kind = 'curation' WHERE kind = 'feedback'")
