"""The job store: :class:`JobStore` gathers the tables' methods and runs the idempotent ones once more when
the database dropped their connection.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy.exc import DBAPIError

from dataflywheel.errors import StoreError
from dataflywheel.jobs.store.candidates import CandidateRows
from dataflywheel.jobs.store.jobs import JobRows
from dataflywheel.jobs.store.routes import RouteRows
from dataflywheel.jobs.store.schedules import ScheduleRows
from dataflywheel.jobs.store.stages import StageRows

if TYPE_CHECKING:
    from dataflywheel.settings import Settings

logger = logging.getLogger(__name__)


class JobStore(JobRows, CandidateRows, StageRows, ScheduleRows, RouteRows):
    """The repository of jobs. Thread-safe; one short transaction per call.

    ``url`` is an SQLAlchemy URL: ``sqlite:///path/jobs.db`` or ``postgresql://user@host/db``
    (psycopg 3 is used). ``sqlite://`` (in memory) keeps a single connection: use it from one thread.
    With ``migrate`` (the default) the schema is upgraded to the newest revision on open.

    Raises :class:`~dataflywheel.errors.StoreError` when the database cannot be reached; the message
    names the URL with its password masked.
    """


def open_job_store(settings: Settings) -> JobStore:
    """Open (and migrate) the job store that ``settings`` name; see :meth:`JobStore.from_settings`."""
    return JobStore.from_settings(settings)


# A connection the database dropped (a restart, a failover, pg_terminate_backend) fails the transaction that
# was using it; the pool reconnects on the next checkout. These methods are run once more then: each is one
# transaction that either committed or did not, and running it again is harmless (reads, conditional updates,
# transition-checked changes that are no-ops when repeated, fenced writes that refuse a second try). Creating
# a job and appending an event are left out: a retry after a commit whose answer was lost would double them.
_RETRIED_ON_DISCONNECT: Final = (
    "get_job",
    "job_detail",
    "list_jobs",
    "set_job_status",
    "update_job",
    "request_cancel",
    "is_cancel_requested",
    "add_candidate_run",
    "set_candidate_stage",
    "update_candidate_run",
    "upsert_evaluation",
    "upsert_customization",
    "upsert_judge",
    "set_datasets",
    "get_stage",
    "list_stages",
    "start_stage",
    "heartbeat_stage",
    "reclaim_stage",
    "finish_stage",
    "list_events",
    "unfinished_jobs",
    "claim_job",
    "heartbeat",
    "release_job",
    "workloads",
    "get_schedule",
    "find_schedule",
    "list_schedules",
    "update_schedule",
    "claim_firing",
    "record_firing",
    "claim_drift_check",
    "record_drift",
    "latest_dataset",
    "current_route",
    "current_routes",
    "route_events",
)


def _retry_on_disconnect(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except StoreError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, DBAPIError) and cause.connection_invalidated):
                raise
            logger.warning("job store at %s: connection lost in %s, trying once more", self.url, method.__name__)
            return method(self, *args, **kwargs)

    return wrapper


for _name in _RETRIED_ON_DISCONNECT:
    setattr(JobStore, _name, _retry_on_disconnect(getattr(JobStore, _name)))
