"""The Alembic migrations: they build exactly the models' schema, on SQLite and PostgreSQL, idempotently."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from dataflywheel.errors import StoreError
from dataflywheel.jobs import JobStatus, JobStore
from dataflywheel.jobs.store import alembic_config
from dataflywheel.jobs.tables import Base

VERSION_TABLE = "fw_alembic_version"
TABLES = {
    "fw_jobs",
    "fw_candidate_runs",
    "fw_evaluations",
    "fw_customizations",
    "fw_judge_runs",
    "fw_datasets",
    "fw_stages",
    "fw_job_events",
    "fw_schedules",
    "fw_route_events",
}


def _diff(store: JobStore) -> list[Any]:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return list(compare_metadata(context, Base.metadata))


def _versions(store: JobStore) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def test_one_linear_history_whose_head_builds_every_table() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == ["0006"]
    assert set(Base.metadata.tables) == TABLES


def test_migrated_schema_matches_the_models(store_url: str) -> None:
    with JobStore(store_url) as store:
        with store.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == TABLES | {VERSION_TABLE}
        assert _diff(store) == []
        assert _versions(store) == ["0006"]


def test_upgrade_is_idempotent_and_keeps_data(store_url: str) -> None:
    with JobStore(store_url) as store:
        job = store.create_job("w", "c", {"k": 1})
        store.upgrade()
        store.upgrade()
    with JobStore(store_url) as again:
        assert again.get_job(job.id) == job
        assert _versions(again) == ["0006"]
        assert _diff(again) == []


def test_concurrent_opens_of_a_new_database_all_succeed(store_url: str) -> None:
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []
    stores: list[JobStore] = []

    def open_one() -> None:
        barrier.wait()
        try:
            stores.append(JobStore(store_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    try:
        job = stores[0].create_job("w", "c", {})
        assert stores[1].set_job_status(job.id, JobStatus.RUNNING).status is JobStatus.RUNNING
        assert _versions(stores[2]) == ["0006"]
    finally:
        for s in stores:
            s.close()


def test_downgrade_drops_everything_and_upgrade_rebuilds_it(store_url: str) -> None:
    with JobStore(store_url) as store:
        store.create_job("w", "c", {})
        config = alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        with store.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {VERSION_TABLE}
        store.upgrade()
        assert _diff(store) == []
        assert store.list_jobs() == ([], 0)


def test_the_comparison_notices_a_schema_drift(store_url: str) -> None:
    # Guards the tests above against passing vacuously.
    with JobStore(store_url) as store:
        with store.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_fw_jobs_status"))
        diff = _diff(store)
        assert [(d[0], d[1].name) for d in diff] == [("add_index", "ix_fw_jobs_status")]


def test_a_database_from_a_newer_version_is_refused(store_url: str) -> None:
    with JobStore(store_url) as store, store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(StoreError, match="9999"):
        JobStore(store_url)


def test_0003_renames_the_feedback_loops_kind_and_stage_and_old_values_still_load(store_url: str) -> None:
    from dataflywheel.jobs.status import JobKind, TaskStatus

    with JobStore(store_url) as store:
        job = store.create_job("w", "c", {"model": "m"}, kind=JobKind.FEEDBACK)
        store.start_stage(job.id, "feedback", "test")
        store.finish_stage(job.id, "feedback", TaskStatus.COMPLETED, output={"n": 1})
        config = alembic_config()
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT kind FROM fw_jobs")).scalar() == "curation"
            assert conn.execute(text("SELECT key FROM fw_stages")).scalar() == "curate"
        # A row an older process wrote still loads, under the new name.
        assert store.get_job(job.id).kind is JobKind.FEEDBACK
        store.upgrade()
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT kind FROM fw_jobs")).scalar() == "feedback"
        assert store.get_stage(job.id, "feedback") is not None  # the job resumes from its stage
        assert store.list_jobs(kind=JobKind.FEEDBACK)[1] == 1
