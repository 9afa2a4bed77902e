"""Errors of the job store. Each derives from :class:`~dataflywheel.errors.FlywheelError`.

A database that cannot be reached (or refuses a query) is reported as
:class:`~dataflywheel.errors.StoreError`, the project's error for every store.
"""

from __future__ import annotations

from dataflywheel.errors import FlywheelError


class JobNotFoundError(FlywheelError):
    """No job (or candidate run) has the given id. The message names the id."""


class JobFinishedError(FlywheelError):
    """The job is already in a terminal status, so it cannot be cancelled (or changed) any more."""


class JobRunningError(FlywheelError):
    """The job has not finished yet (pending, running or cancelling), so it cannot be deleted."""


class IllegalTransitionError(FlywheelError):
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


class StageLeaseHeldError(FlywheelError):
    """A stage was to start while another attempt runs it under a live lease (its owner heartbeats): a
    duplicate delivery (a Celery redelivery, a re-sent task) must not run a stage twice at once."""


class StaleAttemptError(FlywheelError):
    """A stage attempt wrote after its lease was taken over (its heartbeat went stale and the stage was
    re-queued or crashed), or a delivery names an attempt that already ran. Nothing was written: the fence
    check is in the same transaction as the write."""
