"""Errors of the job store, the one list of them (import them from here). Each derives from
:class:`~dataflywheel.errors.FlywheelError`, grouped by cause: :class:`JobNotFoundError` (what is named does
not exist) and :class:`JobStateError` (the state of the job or stage forbids the change), whose subclasses
say which state. The API maps the two groups (404 and 409), so a new error of a group needs no new entry.

A database that cannot be reached (or refuses a query) is reported as
:class:`~dataflywheel.errors.StoreError`, the project's error for every store.
"""

from __future__ import annotations

from dataflywheel.errors import FlywheelError

__all__ = [
    "IllegalTransitionError",
    "JobFinishedError",
    "JobNotFoundError",
    "JobRunningError",
    "JobStateError",
    "ScheduleExistsError",
    "ScheduleNotFoundError",
    "StageLeaseHeldError",
    "StaleAttemptError",
]


class JobNotFoundError(FlywheelError):
    """No job (or candidate run) has the given id. The message names the id."""


class ScheduleNotFoundError(JobNotFoundError):
    """No schedule has the given id (or workload and client). The message names it."""


class JobStateError(FlywheelError):
    """The state of the job (or of one of its stages) forbids the operation; a subclass says which state."""


class JobFinishedError(JobStateError):
    """The job is already in a terminal status, so it cannot be cancelled (or changed) any more."""


class JobRunningError(JobStateError):
    """The job has not finished yet (pending, running or cancelling), so it cannot be deleted."""


class IllegalTransitionError(JobStateError):
    """A status change that the entity's transition table does not allow (e.g. a job from completed to running).

    ``entity`` names what was changed (``job 3f2a...``, ``candidate smollm2 of job 3f2a...``); ``old`` and
    ``new`` are the two statuses.
    """

    def __init__(self, entity: str, old: str, new: str, allowed: frozenset[str] = frozenset()) -> None:
        self.entity = entity
        self.old = old
        self.new = new
        choices = ", ".join(sorted(allowed)) if allowed else "nothing (it is terminal)"
        super().__init__(f"{entity}: illegal transition from {old!s} to {new!s}; from {old!s} it may go to {choices}")


class ScheduleExistsError(JobStateError):
    """The workload and client already have a schedule (one each): change it, or remove it first."""


class StageLeaseHeldError(JobStateError):
    """A stage was to start while another attempt runs it under a live lease (its owner heartbeats): a
    duplicate delivery (a Celery redelivery, a re-sent task) must not run a stage twice at once."""


class StaleAttemptError(JobStateError):
    """A stage attempt wrote after its lease was taken over (its heartbeat went stale and the stage was
    re-queued or crashed), or a delivery names an attempt that already ran. Nothing was written: the fence
    check is in the same transaction as the write."""
