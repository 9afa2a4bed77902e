"""The job store: every job, its candidates, evaluations, stages and events, in SQLite or PostgreSQL.

``JobStore(url)`` opens the database and brings its schema up to date (Alembic migrations, safe when
several processes open it at once). Every method is one short transaction on a session of its own, so a
store is shared freely between threads; methods return frozen records (:mod:`dataflywheel.jobs.records`),
never ORM objects. The update methods take typed keyword arguments; one left out (:data:`UNSET`) is unchanged.

Concurrency. Status changes read, check and write in one transaction that holds the row: ``SELECT ... FOR
NO KEY UPDATE`` on PostgreSQL, a write transaction taken up front (``BEGIN IMMEDIATE``) on SQLite, whose
writers are serialized. Claiming a job is a single conditional ``UPDATE``, so of two racing workers
exactly one wins.

The modules, by responsibility:

* :mod:`.connection`: the URL, the engine, migrations, transactions (:class:`.connection.StoreConnection`);
* :mod:`.jobs`: the jobs table, events, job owners, workload summaries;
* :mod:`.candidates`: candidate runs, evaluations, customizations, the judge check, datasets;
* :mod:`.stages` and :mod:`.leases`: stage attempts under leases, fencing, crashed stages;
* :mod:`.schedules`: workload schedules, their firings and drift checks claimed atomically;
* :mod:`.transitions`: status changes inside a transaction (locks, transition checks, events);
* :mod:`.mapping`: ORM rows to records; :mod:`.values`: :data:`UNSET` and value checks;
* :mod:`.job_store`: :class:`JobStore`, all of the above, retried once on a dropped connection.
"""

from __future__ import annotations

from dataflywheel.jobs.store.connection import MIGRATIONS_DIR, alembic_config, default_url
from dataflywheel.jobs.store.job_store import JobStore, open_job_store
from dataflywheel.jobs.store.leases import DEFAULT_STALE_AFTER_S
from dataflywheel.jobs.store.values import UNSET, JudgeKind, Unset

__all__ = [
    "DEFAULT_STALE_AFTER_S",
    "MIGRATIONS_DIR",
    "UNSET",
    "JobStore",
    "JudgeKind",
    "Unset",
    "alembic_config",
    "default_url",
    "open_job_store",
]
