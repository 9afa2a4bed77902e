"""The status vocabulary of jobs: one enum per entity, shared by the database, the API and the docs.

Each enum has a legal-transition table. :func:`check_transition` enforces it; the job store calls it on
every status change, so an impossible history (a completed job running again) cannot be written.

Staying in the same status is always allowed (a no-op), so retried calls are harmless.

A transition back to *pending* from an active status exists on purpose for every entity: when the worker
that ran a job dies (its heartbeat goes stale), recovery re-queues the job and what was in flight, and a
new worker resumes it from its last finished stage. Nothing leaves a terminal status.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final, TypeVar

from dataflywheel.jobs.errors import IllegalTransitionError


class _Lifecycle(StrEnum):
    """A status with a legal-transition table (:func:`allowed_next`)."""

    @property
    def terminal(self) -> bool:
        """Whether nothing can follow this status (it has no transition)."""
        return not _TABLES[type(self)][self]


class JobKind(StrEnum):
    """What a job does."""

    FLYWHEEL = "flywheel"
    """Build the datasets from the workload's logs (:mod:`dataflywheel.curation`), then evaluate (and
    customize) every candidate model."""
    FEEDBACK = "feedback"
    """The feedback loop (:mod:`dataflywheel.feedback`): a student model answers the workload's logged
    requests; its answers are normalized, filtered (judge, teacher agreement) and the good ones written back
    as new log records. No datasets are built and no candidate is evaluated."""
    CURATION = "feedback"
    """Deprecated alias of :attr:`FEEDBACK` (its name until 0.x; to be removed in the next release). A stored
    ``"curation"`` still loads, as :attr:`FEEDBACK`."""

    @classmethod
    def _missing_(cls, value: object) -> JobKind | None:
        return cls.FEEDBACK if value == LEGACY_FEEDBACK_KIND else None


LEGACY_FEEDBACK_KIND: Final = "curation"
"""The feedback loop's kind as jobs stored it before it was renamed (migration 0003 rewrites those rows)."""


class JobStatus(_Lifecycle):
    """The status of a job."""

    PENDING = "pending"
    """Queued; no worker has started it (or it was re-queued after its worker died)."""
    RUNNING = "running"
    """A worker is executing its stages."""
    CANCELLING = "cancelling"
    """Cancellation was requested; the worker is stopping what runs (deployments, trainings)."""
    COMPLETED = "completed"
    """Every stage finished; the result is stored."""
    FAILED = "failed"
    """A stage failed; ``error`` holds the first error."""
    CANCELLED = "cancelled"
    """Stopped on request."""
    CRASHED = "crashed"
    """The infrastructure died under it, not the work: a stage whose owner (process, worker) died more often
    than ``executor.stage_attempts`` allows. ``error`` says which stage and which owner. Distinct from
    *failed* (the work itself raised), as Prefect separates them: a crashed job may well succeed when run
    again."""


class CandidateStage(_Lifecycle):
    """The visible stage of one candidate model inside a flywheel job."""

    PENDING = "pending"
    DEPLOYING = "deploying"
    """Starting the model server (the base model, or the customized one)."""
    EVALUATING = "evaluating"
    CUSTOMIZING = "customizing"
    """Fine-tuning a LoRA adapter."""
    SHUTTING_DOWN = "shutting_down"
    """Stopping the model server."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(_Lifecycle):
    """The status of a unit of work: an evaluation, a customization, the judge check, a workflow stage."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    """Not needed (e.g. customization of a model that is not customizable, a disabled judge)."""
    CRASHED = "crashed"
    """Its owner died (no heartbeat for ``executor.stale_after_s``) on every attempt that
    ``executor.stage_attempts`` allows: an infrastructure death, not an error of the work (that is *failed*)."""


class EventKind(StrEnum):
    """What a job event reports (``fw_job_events.kind``; stored as text, so this list may grow)."""

    STATUS = "status"
    """The job's status changed."""
    STAGE = "stage"
    """A workflow stage or a candidate's stage changed."""
    PROGRESS = "progress"
    ERROR = "error"
    LOG = "log"


class ScheduleTrigger(StrEnum):
    """Why a schedule fired a job (``fw_schedules.last_trigger``)."""

    CRON = "cron"
    """Its cron expression came due."""
    NEW_RECORDS = "new_records"
    """At least ``min_new_records`` records were logged since it last fired (or was created)."""
    DRIFT = "drift"
    """The drift check (:mod:`dataflywheel.drift`) found the new logs drifted from the last job's dataset."""


JOB_TERMINAL: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CRASHED})
JOB_UNFINISHED: Final = frozenset(set(JobStatus) - JOB_TERMINAL)
CANDIDATE_TERMINAL: Final = frozenset({CandidateStage.COMPLETED, CandidateStage.FAILED, CandidateStage.CANCELLED})
TASK_TERMINAL: Final = frozenset(
    {TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.SKIPPED, TaskStatus.CRASHED}
)

_S = TypeVar("_S", JobStatus, CandidateStage, TaskStatus)


def _final(terminal: frozenset[_S]) -> dict[_S, frozenset[_S]]:
    """The transitions of the terminal statuses: none (nothing leaves a terminal status)."""
    return dict.fromkeys(terminal, frozenset())


JOB_TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = {
    # A pending job can be cancelled outright when no worker holds it, or fail before it starts
    # (e.g. its configuration is refused).
    JobStatus.PENDING: frozenset(
        {JobStatus.RUNNING, JobStatus.CANCELLING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.CRASHED}
    ),
    # running -> pending: the worker died; recovery re-queues the job so that it resumes.
    # running -> crashed: a stage's owners died more often than its attempts allow.
    JobStatus.RUNNING: frozenset(
        {JobStatus.PENDING, JobStatus.CANCELLING, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CRASHED}
    ),
    # Once cancellation is requested the job ends cancelled, or failed (crashed) when stopping itself fails;
    # work that finished meanwhile does not make it completed.
    JobStatus.CANCELLING: frozenset({JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.CRASHED}),
} | _final(JOB_TERMINAL)

_CANDIDATE_ACTIVE = frozenset(
    {CandidateStage.DEPLOYING, CandidateStage.EVALUATING, CandidateStage.CUSTOMIZING, CandidateStage.SHUTTING_DOWN}
)
CANDIDATE_TRANSITIONS: Final[Mapping[CandidateStage, frozenset[CandidateStage]]] = {
    # A candidate may skip stages (not customizable, nothing to deploy for a remote endpoint).
    CandidateStage.PENDING: _CANDIDATE_ACTIVE | CANDIDATE_TERMINAL,
    # The working stages alternate (deploy base, evaluate, customize, deploy customized, evaluate again);
    # back to pending when the job is re-queued after a crash.
    CandidateStage.DEPLOYING: (_CANDIDATE_ACTIVE - {CandidateStage.DEPLOYING})
    | CANDIDATE_TERMINAL
    | {CandidateStage.PENDING},
    CandidateStage.EVALUATING: (_CANDIDATE_ACTIVE - {CandidateStage.EVALUATING})
    | CANDIDATE_TERMINAL
    | {CandidateStage.PENDING},
    CandidateStage.CUSTOMIZING: (_CANDIDATE_ACTIVE - {CandidateStage.CUSTOMIZING})
    | CANDIDATE_TERMINAL
    | {CandidateStage.PENDING},
    # Shutting down is the last working stage: the model server is going away.
    CandidateStage.SHUTTING_DOWN: CANDIDATE_TERMINAL | {CandidateStage.PENDING},
} | _final(CANDIDATE_TERMINAL)

TASK_TRANSITIONS: Final[Mapping[TaskStatus, frozenset[TaskStatus]]] = {
    # pending -> completed: a result that needed no work (e.g. reused from a finished stage).
    TaskStatus.PENDING: TASK_TERMINAL | {TaskStatus.RUNNING},
    # running -> pending: re-queued after its worker died; running -> skipped: it found nothing to do;
    # running -> crashed: its owner died and no attempt is left.
    TaskStatus.RUNNING: TASK_TERMINAL | {TaskStatus.PENDING},
} | _final(TASK_TERMINAL)

_TABLES: Final[dict[type[StrEnum], Mapping[StrEnum, frozenset[StrEnum]]]] = {
    JobStatus: JOB_TRANSITIONS,  # type: ignore[dict-item]
    CandidateStage: CANDIDATE_TRANSITIONS,  # type: ignore[dict-item]
    TaskStatus: TASK_TRANSITIONS,  # type: ignore[dict-item]
}


def allowed_next(status: _S) -> frozenset[_S]:
    """The statuses ``status`` may change to (besides itself)."""
    return _TABLES[type(status)][status]  # type: ignore[return-value]


def check_transition(entity: str, old: _S, new: _S) -> None:
    """Raise :class:`IllegalTransitionError` unless ``old`` may change to ``new``.

    ``entity`` names what changes, for the message (``"job 3f2a..."``). ``old == new`` is allowed.
    """
    if type(old) is not type(new):
        raise TypeError(f"{entity}: cannot compare a {type(old).__name__} with a {type(new).__name__}")
    if old == new:
        return
    allowed = allowed_next(old)
    if new not in allowed:
        raise IllegalTransitionError(entity, old.value, new.value, frozenset(s.value for s in allowed))
