"""Alembic environment of the job store.

There is no ``alembic.ini``: :func:`dataflywheel.jobs.store.alembic_config` builds the configuration and
passes an open connection (already in a transaction) as ``config.attributes["connection"]``. The caller
owns that transaction, so it can hold a lock around the whole upgrade and commit it at once.
"""

from __future__ import annotations

from alembic import context

from dataflywheel.jobs.tables import Base

VERSION_TABLE = "fw_alembic_version"
"""Our own version table, so the job store can share a database with other Alembic-managed schemas."""


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("the job store's migrations need config.attributes['connection']")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("the job store's migrations run online only (JobStore.upgrade)")
run_migrations_online()
