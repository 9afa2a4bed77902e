"""A workload's route in the logging proxy: which model answers its calls, as stored in the job store.

Every change (a promotion, a rollback) is one row of ``fw_route_events`` (append-only); the current route of
a workload and client is its newest event. :class:`RouteMode` and :class:`RouteAction` are the vocabulary,
used by the table, the API, the proxy and the dashboard alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class RouteMode(StrEnum):
    """How a promoted candidate takes part in a workload's traffic."""

    SHADOW = "shadow"
    """Both answer; the big model's answer is returned, the candidate's only logged (off the caller's path)."""
    CANARY = "canary"
    """A share of the requests (chosen by a hash of the request) is answered by the candidate."""
    FULL = "full"
    """Every request is answered by the candidate."""


class RouteAction(StrEnum):
    PROMOTE = "promote"
    """A candidate became the route (or its mode or share changed)."""
    ROLLBACK = "rollback"
    """The route went back to the big model alone."""


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """Where a promoted candidate is served: an OpenAI-compatible base URL and the model name to ask for there
    (a LoRA adapter's name for a customized candidate)."""

    base_url: str
    model: str


@dataclass(frozen=True, slots=True)
class RouteEventRecord:
    """One stored route change (``fw_route_events``)."""

    id: int
    workload_id: str
    client_id: str
    ts: datetime
    action: RouteAction
    mode: RouteMode | None
    """None after a rollback."""
    canary_share: float | None
    target: RouteTarget | None
    job_id: str | None
    candidate: str | None
    """The candidate as the job names it."""
    eval_type: str | None
    """Its eval type whose model is served (``base``, ``icl``, ``customized``)."""
    override: bool
    """Promoted although the job's recommendation did not pass its gate."""
    reason: str
    """Why (required with an override; what the rollback was for)."""

    @property
    def active(self) -> bool:
        """Whether the candidate takes part in traffic (a promotion), as opposed to a rollback."""
        return self.action is RouteAction.PROMOTE and self.mode is not None and self.target is not None
