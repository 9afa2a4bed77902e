"""Errors of promotion and rollback. Each belongs to a group the API already maps: the job's state forbids it
(409), bad input (422)."""

from __future__ import annotations

from dataflywheel.errors import FlywheelError
from dataflywheel.jobs.errors import JobStateError


class PromotionInputError(FlywheelError):
    """A promotion that cannot be carried out as asked: a candidate or eval type the job does not have, no
    URL where the candidate is served, an override without a reason (422, the message names the field)."""


class GateClosedError(JobStateError):
    """The job's recommendation does not pass its gate for this candidate, and no override was given (409)."""


class JobNotPromotableError(JobStateError):
    """The job has not completed (or is not a flywheel job): it has no result to promote (409)."""


class NoActiveRouteError(JobStateError):
    """A rollback of a workload that no candidate serves: nothing to roll back (409)."""
