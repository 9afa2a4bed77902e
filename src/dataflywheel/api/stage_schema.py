"""A job's workflow stage as the API shows it (``JobDetailPublic.stages``): where each stage is, and which
worker ran its latest attempt."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from dataflywheel.jobs.records import StageRecord
from dataflywheel.jobs.status import TaskStatus
from dataflywheel.projection import project
from dataflywheel.workflow.plan import Queue, parse_stage_key, stage_queue

__all__ = ["StagePublic"]


class StagePublic(BaseModel):
    """One stage of the job's workflow (datasets, deploy, evals, customize, shutdown, finalize, ...)."""

    key: str = Field(description="The stage: its kind, and the candidate after a colon (base-eval:smollm2).")
    status: TaskStatus
    queue: Queue | None = Field(description="The Celery queue the stage is sent to (executor celery).")
    attempts: int = Field(ge=0, description="Attempts started (a worker that died costs one).")
    worker: str | None = Field(
        description="Who ran the latest attempt: celery:<worker node name>:<pid> on Celery workers, the "
        "service's owner id (with /child for a stage run in a child process) on the embedded executor."
    )
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, stage: StageRecord) -> StagePublic:
        try:
            queue: Queue | None = stage_queue(parse_stage_key(stage.key)[0])
        except ValueError:  # a stage kind of a newer release
            queue = None
        return project(cls, stage, queue=queue, worker=stage.owner)
