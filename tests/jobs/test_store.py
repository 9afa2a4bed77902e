"""The job store's behaviour, on SQLite and on PostgreSQL (the ``store`` fixture runs each test on both)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from dataflywheel.errors import StoreError
from dataflywheel.jobs import (
    CandidateRunDetail,
    CandidateStage,
    EventKind,
    IllegalTransitionError,
    JobDetail,
    JobFinishedError,
    JobKind,
    JobNotFoundError,
    JobRunningError,
    JobStatus,
    JobStore,
    StageLeaseHeldError,
    StaleAttemptError,
    TaskStatus,
    open_job_store,
)
from dataflywheel.jobs.records import StageLease
from dataflywheel.settings import Settings


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released at the same moment; their results (or exceptions), in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# Create, get, list ----------------------------------------------------------------------------------
def test_create_and_get_round_trip(store: JobStore) -> None:
    config = {"data_split_config": {"eval_size": 20}, "candidates": ["smollm2"], "nested": {"a": [1, 2.5, None]}}
    job = store.create_job("wl-1", "client-a", config, kind=JobKind.FEEDBACK)

    assert len(job.id) == 32 and int(job.id, 16) >= 0
    assert job.status is JobStatus.PENDING and job.kind is JobKind.FEEDBACK
    assert (job.workload_id, job.client_id, job.config) == ("wl-1", "client-a", config)
    assert job.num_records == 0 and job.progress == 0.0 and job.error is None and job.result is None
    assert job.created_at.tzinfo is UTC and abs(datetime.now(UTC) - job.created_at) < timedelta(seconds=10)
    assert job.started_at is None and job.finished_at is None
    assert store.get_job(job.id) == job

    events = store.list_events(job.id)
    assert [(e.kind, e.data) for e in events] == [("status", {"to": "pending"})]


def test_get_unknown_job_names_the_id(store: JobStore) -> None:
    with pytest.raises(JobNotFoundError, match="nope123"):
        store.get_job("nope123")
    for call in (
        lambda: store.job_detail("nope123"),
        lambda: store.set_job_status("nope123", JobStatus.RUNNING),
        lambda: store.request_cancel("nope123"),
        lambda: store.is_cancel_requested("nope123"),
        lambda: store.delete_job("nope123"),
        lambda: store.add_event("nope123", "log", "hi"),
        lambda: store.list_events("nope123"),
        lambda: store.add_candidate_run("nope123", "m"),
    ):
        with pytest.raises(JobNotFoundError, match="nope123"):
            call()
    with pytest.raises(JobNotFoundError, match="candidate run 999"):
        store.set_candidate_stage(999, CandidateStage.DEPLOYING)


def test_list_filters_paginates_and_orders_newest_first(store: JobStore) -> None:
    made = []
    for i in range(7):
        made.append(store.create_job(f"wl-{i % 2}", f"client-{i % 3}", {"i": i}))
    store.set_job_status(made[1].id, JobStatus.RUNNING)
    store.set_job_status(made[2].id, JobStatus.FAILED, error="boom")
    curation = store.create_job("wl-0", "client-0", {}, kind=JobKind.FEEDBACK)
    newest_first = [curation.id] + [j.id for j in reversed(made)]

    jobs, total = store.list_jobs()
    assert total == 8 and [j.id for j in jobs] == newest_first

    page1, total1 = store.list_jobs(limit=3)
    page2, _ = store.list_jobs(limit=3, offset=3)
    page3, _ = store.list_jobs(limit=3, offset=6)
    assert total1 == 8
    assert [j.id for j in page1 + page2 + page3] == newest_first
    assert len(page3) == 2

    wl0, n = store.list_jobs(workload_id="wl-0")
    assert n == 5 and all(j.workload_id == "wl-0" for j in wl0)
    c1, n = store.list_jobs(client_id="client-1")
    assert n == 2 and {j.id for j in c1} == {made[1].id, made[4].id}
    running, n = store.list_jobs(status=JobStatus.RUNNING)
    assert n == 1 and running[0].id == made[1].id
    some, n = store.list_jobs(status=[JobStatus.RUNNING, JobStatus.FAILED])
    assert n == 2 and [j.id for j in some] == [made[2].id, made[1].id]
    pend_wl1, n = store.list_jobs(status=JobStatus.PENDING, workload_id="wl-1")
    assert n == 2 and {j.id for j in pend_wl1} == {made[3].id, made[5].id}
    cur, n = store.list_jobs(kind=JobKind.FEEDBACK)
    assert n == 1 and cur[0].id == curation.id
    none, n = store.list_jobs(workload_id="missing")
    assert (none, n) == ([], 0)
    empty_page, n = store.list_jobs(offset=100)
    assert (empty_page, n) == ([], 8)

    with pytest.raises(ValueError):
        store.list_jobs(limit=-1)


def test_jobs_created_in_the_same_instant_keep_a_stable_order(store: JobStore) -> None:
    ids = {store.create_job("w", "c", {}).id for _ in range(5)}
    first, _ = store.list_jobs()
    again, _ = store.list_jobs()
    assert {j.id for j in first} == ids and [j.id for j in first] == [j.id for j in again]
    for a, b in itertools.pairwise(first):
        assert (a.created_at, a.id) > (b.created_at, b.id)


# Status ---------------------------------------------------------------------------------------------
def test_status_transitions_set_timestamps_and_events(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    running = store.set_job_status(job.id, JobStatus.RUNNING)
    assert running.status is JobStatus.RUNNING and running.started_at is not None and running.finished_at is None
    assert running.updated_at >= job.updated_at

    # re-queued after a crash, then running again: started_at is the first start
    store.set_job_status(job.id, JobStatus.PENDING)
    again = store.set_job_status(job.id, JobStatus.RUNNING)
    assert again.started_at == running.started_at

    done = store.set_job_status(job.id, JobStatus.COMPLETED)
    assert done.finished_at is not None and done.finished_at >= done.started_at  # type: ignore[operator]
    assert done.progress == 100.0

    statuses = [(e.data or {}).get("to") for e in store.list_events(job.id) if e.kind == EventKind.STATUS]
    assert statuses == ["pending", "running", "pending", "running", "completed"]


def test_illegal_transition_is_refused_and_changes_nothing(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    store.set_job_status(job.id, JobStatus.RUNNING)
    store.set_job_status(job.id, JobStatus.COMPLETED)
    before = store.get_job(job.id)
    n_events = len(store.list_events(job.id))

    with pytest.raises(IllegalTransitionError, match=rf"job {job.id}.*completed.*running"):
        store.set_job_status(job.id, JobStatus.RUNNING)
    assert store.get_job(job.id) == before
    assert len(store.list_events(job.id)) == n_events

    other = store.create_job("w", "c", {})
    with pytest.raises(IllegalTransitionError):
        store.set_job_status(other.id, JobStatus.COMPLETED)  # pending cannot complete


def test_same_status_is_a_no_op(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    first = store.set_job_status(job.id, JobStatus.RUNNING)
    second = store.set_job_status(job.id, JobStatus.RUNNING)
    assert second == first
    assert len(store.list_events(job.id)) == 2


def test_first_error_is_kept(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    store.set_job_status(job.id, JobStatus.RUNNING)
    store.set_job_status(job.id, JobStatus.RUNNING, error="disk full")
    failed = store.set_job_status(job.id, JobStatus.FAILED, error="stage judge crashed")
    assert failed.error == "disk full"
    assert failed.status is JobStatus.FAILED
    # the later error is still in the history
    assert any("stage judge crashed" in e.message for e in store.list_events(job.id))


def test_concurrent_status_changes_are_serialized(store: JobStore) -> None:
    # complete vs cancel on a running job: exactly one wins, the other sees the result and is refused.
    for _ in range(5):
        job = store.create_job("w", "c", {})
        store.set_job_status(job.id, JobStatus.RUNNING)
        store.claim_job(job.id, "worker")
        results = _race(
            [partial(store.set_job_status, job.id, JobStatus.COMPLETED), partial(store.request_cancel, job.id)]
        )
        errors = [r for r in results if isinstance(r, Exception)]
        final = store.get_job(job.id).status
        if final is JobStatus.COMPLETED:
            assert len(errors) == 1 and isinstance(errors[0], JobFinishedError)
        else:
            assert final is JobStatus.CANCELLING
            assert len(errors) == 1 and isinstance(errors[0], IllegalTransitionError)
        statuses = [(e.data or {}).get("to") for e in store.list_events(job.id) if e.kind == "status"]
        assert statuses == ["pending", "running", final.value]


def test_update_job_sets_allowed_fields_only(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    beat = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    updated = store.update_job(job.id, num_records=1234, progress=42.5, result={"best": "m"}, heartbeat_at=beat)
    assert (updated.num_records, updated.progress, updated.result, updated.heartbeat_at) == (
        1234,
        42.5,
        {"best": "m"},
        beat,
    )
    assert store.get_job(job.id) == updated
    with pytest.raises(TypeError, match="status"):
        store.update_job(job.id, status="completed")
    with pytest.raises(ValueError, match="progress"):
        store.update_job(job.id, progress=101)
    with pytest.raises(ValueError, match="naive"):
        store.update_job(job.id, heartbeat_at=datetime(2030, 1, 1))


def test_timestamps_in_other_zones_come_back_in_utc(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    plus2 = datetime(2030, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    updated = store.update_job(job.id, heartbeat_at=plus2)
    assert updated.heartbeat_at == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert updated.heartbeat_at is not None and updated.heartbeat_at.tzinfo is UTC
    assert store.get_job(job.id).heartbeat_at == updated.heartbeat_at


# Cancel -----------------------------------------------------------------------------------------------
def test_cancel_of_unclaimed_pending_job_is_immediate(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    assert not store.is_cancel_requested(job.id)
    cancelled = store.request_cancel(job.id)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert store.is_cancel_requested(job.id)
    assert not store.claim_job(job.id, "worker")  # nothing left to run


def test_cancel_of_running_or_claimed_job_asks_its_worker(store: JobStore) -> None:
    claimed = store.create_job("w", "c", {})
    assert store.claim_job(claimed.id, "worker-1")
    assert store.request_cancel(claimed.id).status is JobStatus.CANCELLING

    running = store.create_job("w", "c", {})
    store.set_job_status(running.id, JobStatus.RUNNING)
    cancelling = store.request_cancel(running.id)
    assert cancelling.status is JobStatus.CANCELLING and cancelling.finished_at is None
    assert store.is_cancel_requested(running.id)
    assert store.request_cancel(running.id) == cancelling  # again: no-op

    with pytest.raises(IllegalTransitionError):
        store.set_job_status(running.id, JobStatus.COMPLETED)
    done = store.set_job_status(running.id, JobStatus.CANCELLED)
    assert done.finished_at is not None

    with pytest.raises(JobFinishedError, match="cancelled"):
        store.request_cancel(running.id)


def test_cancel_of_finished_job_is_refused(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    store.set_job_status(job.id, JobStatus.FAILED, error="bad config")
    with pytest.raises(JobFinishedError, match=job.id):
        store.request_cancel(job.id)
    assert not store.is_cancel_requested(job.id)


# Candidates, evaluations, customization, judge, datasets ---------------------------------------------
def _full_job(store: JobStore) -> str:
    job = store.create_job("w", "c", {"candidates": ["a", "b"]})
    store.set_job_status(job.id, JobStatus.RUNNING)
    for name in ("a", "b"):
        run = store.add_candidate_run(job.id, name)
        for eval_type in ("base-eval", "icl-eval", "customized-eval"):
            store.upsert_evaluation(run.id, eval_type, status=TaskStatus.COMPLETED, scores={"f1": 0.5})
        store.upsert_customization(run.id, status=TaskStatus.RUNNING, total_epochs=2)
    store.upsert_judge(job.id, kind="remote", model="judge-1", base_url="http://judge/v1", status="completed")
    store.set_datasets(job.id, [("eval", 10, "/d/eval.jsonl", "b1"), ("train", 80, "/d/train.jsonl", "b1")])
    return job.id


def test_job_detail_shape(store: JobStore) -> None:
    job_id = _full_job(store)
    detail = store.job_detail(job_id)
    assert isinstance(detail, JobDetail)
    assert detail.job == store.get_job(job_id)
    assert [c.candidate for c in detail.candidates] == ["a", "b"]
    for c in detail.candidates:
        assert isinstance(c, CandidateRunDetail) and c.job_id == job_id
        assert [e.eval_type for e in c.evaluations] == ["base-eval", "icl-eval", "customized-eval"]
        assert all(e.status is TaskStatus.COMPLETED and e.scores == {"f1": 0.5} for e in c.evaluations)
        assert c.customization is not None and c.customization.total_epochs == 2
        assert c.customization.status is TaskStatus.RUNNING
    assert detail.judge is not None
    assert (detail.judge.kind, detail.judge.model, detail.judge.status) == ("remote", "judge-1", TaskStatus.COMPLETED)
    assert [(d.name, d.num_records, d.build_id) for d in detail.datasets] == [("eval", 10, "b1"), ("train", 80, "b1")]
    assert detail.stages == ()


def test_job_detail_lists_the_stages_with_the_worker_of_their_latest_attempt(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    store.start_stage(job.id, "datasets", "celery:cpu@h:11")
    store.finish_stage(job.id, "datasets", TaskStatus.COMPLETED, {"n": 1})
    store.start_stage(job.id, "deploy:m", "celery:gpu@h:12")
    stages = store.job_detail(job.id).stages
    assert [(st.key, st.status, st.owner, st.attempts) for st in stages] == [
        ("datasets", TaskStatus.COMPLETED, "celery:cpu@h:11", 1),
        ("deploy:m", TaskStatus.RUNNING, "celery:gpu@h:12", 1),
    ]


def test_job_detail_of_a_bare_job(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    detail = store.job_detail(job.id)
    assert detail == JobDetail(job=job, candidates=(), judge=None, datasets=())


def test_job_detail_takes_a_fixed_number_of_queries(store: JobStore) -> None:
    job_id = _full_job(store)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        store.job_detail(job_id)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(statements) <= 5, statements


def test_add_candidate_run_is_idempotent(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    first = store.add_candidate_run(job.id, "smollm2")
    assert first.stage is CandidateStage.PENDING
    assert store.add_candidate_run(job.id, "smollm2") == first
    results = _race([partial(store.add_candidate_run, job.id, "racer") for _ in range(4)])
    assert not any(isinstance(r, Exception) for r in results), results
    assert len({r.id for r in results}) == 1
    assert len(store.job_detail(job.id).candidates) == 2


def test_candidate_stage_transitions_timing_and_first_error(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    run = store.add_candidate_run(job.id, "m")
    deploying = store.set_candidate_stage(run.id, CandidateStage.DEPLOYING)
    assert deploying.started_at is not None and deploying.finished_at is None
    store.set_candidate_stage(run.id, CandidateStage.EVALUATING)
    store.set_candidate_stage(run.id, CandidateStage.SHUTTING_DOWN, error="eval timed out")
    failed = store.set_candidate_stage(run.id, CandidateStage.FAILED, error="shutdown failed too")
    assert failed.error == "eval timed out"
    assert failed.finished_at is not None and failed.runtime_s is not None and failed.runtime_s >= 0
    assert failed.started_at == deploying.started_at
    with pytest.raises(IllegalTransitionError, match="candidate m"):
        store.set_candidate_stage(run.id, CandidateStage.EVALUATING)

    stage_events = [e for e in store.list_events(job.id) if e.kind == "stage"]
    assert [e.stage for e in stage_events] == ["candidate:m"] * 4
    assert [(e.data or {})["to"] for e in stage_events] == ["deploying", "evaluating", "shutting_down", "failed"]

    updated = store.update_candidate_run(run.id, deployment={"base_url": "http://127.0.0.1:9000/v1"})
    assert updated.deployment == {"base_url": "http://127.0.0.1:9000/v1"}
    with pytest.raises(TypeError):
        store.update_candidate_run(run.id, stage="completed")


def test_no_new_candidate_on_a_finished_job(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    existing = store.add_candidate_run(job.id, "m")
    store.set_job_status(job.id, JobStatus.FAILED)
    assert store.add_candidate_run(job.id, "m") == existing
    with pytest.raises(JobFinishedError):
        store.add_candidate_run(job.id, "other")


def test_evaluation_upsert_progress_and_status(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    run = store.add_candidate_run(job.id, "m")
    ev = store.upsert_evaluation(run.id, "base-eval")
    assert ev.status is TaskStatus.PENDING and ev.progress == 0 and ev.scores == {}
    ev2 = store.upsert_evaluation(run.id, "base-eval", status="running", total=200, done=50, progress=25.0, eta_s=9.5)
    assert ev2.id == ev.id and ev2.started_at is not None
    assert (ev2.status, ev2.done, ev2.total, ev2.progress, ev2.eta_s) == (TaskStatus.RUNNING, 50, 200, 25.0, 9.5)
    ev3 = store.upsert_evaluation(
        run.id, "base-eval", status=TaskStatus.COMPLETED, done=200, progress=100.0, scores={"function_name": 0.9}
    )
    assert ev3.finished_at is not None and ev3.runtime_s is not None and ev3.runtime_s >= 0
    assert ev3.scores == {"function_name": 0.9}
    with pytest.raises(IllegalTransitionError, match="base-eval"):
        store.upsert_evaluation(run.id, "base-eval", status="running")
    with pytest.raises(ValueError, match="progress"):
        store.upsert_evaluation(run.id, "icl-eval", progress=-1)
    with pytest.raises(TypeError, match="bogus"):
        store.upsert_evaluation(run.id, "icl-eval", bogus=1)

    failing = store.upsert_evaluation(run.id, "icl-eval", status="running", error="first")
    failing = store.upsert_evaluation(run.id, "icl-eval", status="failed", error="second")
    assert failing.error == "first" and failing.status is TaskStatus.FAILED


def test_customization_and_judge_upserts(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    run = store.add_candidate_run(job.id, "m")
    cu = store.upsert_customization(run.id, status="running", total_epochs=2, total_steps=100)
    cu = store.upsert_customization(run.id, epochs_completed=1, steps_completed=50, loss=1.25, tokens_per_s=900.0)
    cu = store.upsert_customization(
        run.id, status="completed", adapter_name="m-lora", adapter_path="/a", metrics={"val_loss": 1.1}
    )
    assert (cu.epochs_completed, cu.steps_completed, cu.loss, cu.adapter_name, cu.metrics) == (
        1,
        50,
        1.25,
        "m-lora",
        {"val_loss": 1.1},
    )
    assert cu.runtime_s is not None and cu.status is TaskStatus.COMPLETED

    judge = store.upsert_judge(job.id, kind="disabled", status="skipped")
    assert (judge.kind, judge.status) == ("disabled", TaskStatus.SKIPPED)
    with pytest.raises(ValueError, match="judge kind"):
        store.upsert_judge(job.id, kind="cloud")
    with pytest.raises(IllegalTransitionError, match="judge"):
        store.upsert_judge(job.id, status="running")


def test_set_datasets_replaces(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    store.set_datasets(job.id, [("eval", 1, "/e", None), ("icl", 2, "/i", None)])
    records = store.set_datasets(job.id, [("train", 3, "/t", "b2"), ("eval", 4, "/e2", "b2")])
    assert [(d.name, d.num_records, d.path) for d in records] == [("eval", 4, "/e2"), ("train", 3, "/t")]
    assert store.job_detail(job.id).datasets == tuple(records)
    with pytest.raises(ValueError, match="unique"):
        store.set_datasets(job.id, [("eval", 1, None, None), ("eval", 2, None, None)])


# Delete ---------------------------------------------------------------------------------------------
def test_delete_refuses_unfinished_jobs(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    with pytest.raises(JobRunningError, match="pending"):
        store.delete_job(job.id)
    store.set_job_status(job.id, JobStatus.RUNNING)
    with pytest.raises(JobRunningError, match="running"):
        store.delete_job(job.id)
    store.request_cancel(job.id)
    with pytest.raises(JobRunningError, match="cancelling"):
        store.delete_job(job.id)
    assert store.get_job(job.id).status is JobStatus.CANCELLING


def test_delete_cascades_and_returns_what_it_deleted(store: JobStore) -> None:
    job_id = _full_job(store)
    keep = _full_job(store)
    store.start_stage(job_id, "datasets", "w1")
    store.set_job_status(job_id, JobStatus.COMPLETED)
    detail = store.job_detail(job_id)

    deleted = store.delete_job(job_id)
    assert deleted == detail
    with pytest.raises(JobNotFoundError):
        store.get_job(job_id)
    with pytest.raises(JobNotFoundError):
        store.delete_job(job_id)

    # no orphan rows in any child table; the other job is intact
    from sqlalchemy import text

    with store.engine.connect() as conn:
        for table in ("fw_candidate_runs", "fw_judge_runs", "fw_datasets", "fw_stages", "fw_job_events"):
            n = conn.execute(text(f"SELECT count(*) FROM {table} WHERE job_id = :j"), {"j": job_id}).scalar_one()
            assert n == 0, table
        for table in ("fw_evaluations", "fw_customizations"):
            orphans = conn.execute(
                text(
                    f"SELECT count(*) FROM {table} t LEFT JOIN fw_candidate_runs r ON r.id = t.candidate_run_id "
                    "WHERE r.id IS NULL"
                )
            ).scalar_one()
            assert orphans == 0, table
    assert len(store.job_detail(keep).candidates) == 2


# Stages ---------------------------------------------------------------------------------------------
def test_stages_count_attempts_and_keep_outputs(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    assert store.get_stage(job.id, "datasets") is None

    first = store.start_stage(job.id, "datasets", "worker-1")
    assert (first.status, first.attempts, first.owner) == (TaskStatus.RUNNING, 1, "worker-1")
    assert first.started_at is not None and first.finished_at is None
    failed = store.finish_stage(job.id, "datasets", TaskStatus.FAILED, error="disk full")
    assert (failed.status, failed.error) == (TaskStatus.FAILED, "disk full")

    retry = store.start_stage(job.id, "datasets", "worker-2")
    assert (retry.attempts, retry.owner, retry.error, retry.finished_at) == (2, "worker-2", None, None)
    # a worker died mid-stage: once its lease is stale, the next one starts it again
    with pytest.raises(StageLeaseHeldError, match="not started twice"):
        store.start_stage(job.id, "datasets", "worker-3")
    third = store.start_stage(job.id, "datasets", "worker-3", stale_after_s=0)
    assert third.attempts == 3 and third.heartbeat_at is not None
    done = store.finish_stage(job.id, "datasets", TaskStatus.COMPLETED, output={"eval": 100, "train": 800})
    assert done.output == {"eval": 100, "train": 800} and done.finished_at is not None
    assert store.get_stage(job.id, "datasets") == done
    assert store.finish_stage(job.id, "datasets", TaskStatus.COMPLETED) == done  # same status: no-op

    with pytest.raises(IllegalTransitionError, match="stage datasets"):
        store.start_stage(job.id, "datasets", "worker-4")
    with pytest.raises(IllegalTransitionError):
        store.finish_stage(job.id, "datasets", TaskStatus.FAILED)
    with pytest.raises(ValueError):
        store.finish_stage(job.id, "datasets", TaskStatus.RUNNING)

    skipped = store.finish_stage(job.id, "judge", TaskStatus.SKIPPED)
    assert (skipped.attempts, skipped.status) == (0, TaskStatus.SKIPPED)
    store.start_stage(job.id, "candidate:m:base-eval", "worker-3")
    assert [s.key for s in store.list_stages(job.id)] == ["datasets", "judge", "candidate:m:base-eval"]

    store.set_job_status(job.id, JobStatus.FAILED)
    with pytest.raises(JobFinishedError):
        store.start_stage(job.id, "late", "worker-3")


def test_a_stage_running_under_a_live_lease_is_not_started_twice(store: JobStore) -> None:
    # Before leases, start_stage let a running stage start again: two Celery workers could train into one run.
    job = store.create_job("w", "c", {})
    first = store.start_stage(job.id, "customize:m", "worker-1", attempt=1)
    assert first.lease() == StageLease(job.id, "customize:m", 1, "worker-1")
    with pytest.raises(StageLeaseHeldError):  # a redelivery while worker-1 heartbeats
        store.start_stage(job.id, "customize:m", "worker-2", attempt=2)
    assert store.heartbeat_stage(first.lease())
    with pytest.raises(StaleAttemptError, match="attempt 1 already ran"):  # a duplicate of attempt 1
        store.start_stage(job.id, "customize:m", "worker-2", attempt=1, stale_after_s=0)
    stage = store.get_stage(job.id, "customize:m")
    assert stage is not None and (stage.attempts, stage.owner) == (1, "worker-1")  # nothing written


def test_a_stale_attempt_writes_nothing_once_its_stage_was_taken_over(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    run = store.add_candidate_run(job.id, "m")
    old = store.start_stage(job.id, "base-eval:m", "worker-1").lease()
    assert store.reclaim_stage(job.id, "base-eval:m", stale_after_s=60, max_attempts=3) is None  # alive
    pending = store.reclaim_stage(job.id, "base-eval:m", stale_after_s=0, max_attempts=3)
    assert pending is not None and pending.status == TaskStatus.PENDING
    new = store.start_stage(job.id, "base-eval:m", "worker-2", attempt=2).lease()
    assert not store.heartbeat_stage(old)  # the old owner learns it lost the lease
    with pytest.raises(StaleAttemptError, match="lost its lease"):
        store.finish_stage(job.id, "base-eval:m", TaskStatus.COMPLETED, output={"by": "worker-1"}, fence=old)
    with pytest.raises(StaleAttemptError):
        store.upsert_evaluation(run.id, "base-eval", fence=old, status=TaskStatus.COMPLETED, scores={"x": 1.0})
    with pytest.raises(StaleAttemptError):
        store.set_datasets(job.id, [("eval", 1, None, None)], fence=old)
    assert store.job_detail(job.id).candidates[0].evaluations == () and store.job_detail(job.id).datasets == ()
    done = store.finish_stage(job.id, "base-eval:m", TaskStatus.COMPLETED, output={"by": "worker-2"}, fence=new)
    assert done.output == {"by": "worker-2"} and done.attempts == 2


def test_a_stage_whose_owners_keep_dying_ends_crashed_with_the_reason(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    store.start_stage(job.id, "customize:m", "worker-1")
    assert store.reclaim_stage(job.id, "customize:m", stale_after_s=0, max_attempts=2) is not None
    store.start_stage(job.id, "customize:m", "worker-2")
    crashed = store.reclaim_stage(job.id, "customize:m", stale_after_s=0, max_attempts=2)
    assert crashed is not None and crashed.status == TaskStatus.CRASHED
    assert crashed.error and "died on all 2 attempt(s)" in crashed.error and "worker-2" in crashed.error
    with pytest.raises(IllegalTransitionError):  # a late redelivery cannot revive it
        store.start_stage(job.id, "customize:m", "worker-3", stale_after_s=0)
    # the cap holds at start too (a Celery redelivery that no driver saw): attempts used up -> crashed
    store.start_stage(job.id, "judge", "worker-1")
    again = store.start_stage(job.id, "judge", "worker-2", stale_after_s=0, max_attempts=1)
    assert again.status == TaskStatus.CRASHED and again.attempts == 1
    store.set_job_status(job.id, JobStatus.RUNNING)
    assert store.set_job_status(job.id, JobStatus.CRASHED, error=crashed.error).status.terminal


def test_cancelling_takes_a_dead_owners_stage_to_cancelled(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    store.start_stage(job.id, "base-eval:m", "worker-1")
    taken = store.reclaim_stage(job.id, "base-eval:m", stale_after_s=0, max_attempts=2, cancelled=True)
    assert taken is not None and taken.status == TaskStatus.CANCELLED and "had died" in (taken.error or "")


# Events ---------------------------------------------------------------------------------------------
def test_events_are_ordered_and_paged_by_id(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    other = store.create_job("w", "c", {})
    for i in range(10):
        store.add_event(job.id, EventKind.PROGRESS, f"step {i}", stage="datasets", data={"i": i})
        store.add_event(other.id, "log", f"other {i}")
    events = store.list_events(job.id)
    assert [e.message for e in events] == ["created (pending)"] + [f"step {i}" for i in range(10)]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert all(e.job_id == job.id for e in events)
    assert events[1].kind == "progress" and events[1].stage == "datasets" and events[1].data == {"i": 0}
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(events))

    page = store.list_events(job.id, after_id=events[3].id, limit=4)
    assert page == events[4:8]
    assert store.list_events(job.id, after_id=events[-1].id) == []


# Recovery -------------------------------------------------------------------------------------------
def test_unfinished_jobs_oldest_first(store: JobStore) -> None:
    a = store.create_job("w", "c", {})
    b = store.create_job("w", "c", {})
    c = store.create_job("w", "c", {})
    d = store.create_job("w", "c", {})
    store.set_job_status(b.id, JobStatus.RUNNING)
    store.set_job_status(c.id, JobStatus.RUNNING)
    store.request_cancel(c.id)
    store.set_job_status(d.id, JobStatus.FAILED)
    assert [j.id for j in store.unfinished_jobs()] == [a.id, b.id, c.id]


def test_claim_heartbeat_release(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    assert store.claim_job(job.id, "w1")
    claimed = store.get_job(job.id)
    assert claimed.owner == "w1" and claimed.heartbeat_at is not None
    assert store.claim_job(job.id, "w1")  # already ours
    assert not store.claim_job(job.id, "w2")  # fresh heartbeat: w1 keeps it
    assert store.heartbeat(job.id, "w1")
    assert not store.heartbeat(job.id, "w2")
    assert not store.release_job(job.id, "w2")

    # w1 stops beating: after stale_after_s another worker may take over, and w1 learns it lost the job
    store.update_job(job.id, heartbeat_at=datetime.now(UTC) - timedelta(minutes=5))
    assert store.claim_job(job.id, "w2", stale_after_s=60)
    assert not store.heartbeat(job.id, "w1")
    assert store.release_job(job.id, "w2")
    released = store.get_job(job.id)
    assert released.owner is None and released.heartbeat_at is None
    assert not store.claim_job("missing", "w1")


def test_claim_race_has_one_winner(store: JobStore) -> None:
    for _ in range(5):
        job = store.create_job("w", "c", {})
        results = _race([partial(store.claim_job, job.id, f"worker-{i}") for i in range(4)])
        assert sorted(results) == [False, False, False, True], results
        assert store.get_job(job.id).owner == f"worker-{results.index(True)}"


# Summaries ------------------------------------------------------------------------------------------
def test_workloads_summarize_each_workload_and_client(store: JobStore) -> None:
    assert store.workloads() == []
    store.create_job("wl-a", "c1", {})
    last_a = store.create_job("wl-a", "c1", {})
    store.set_job_status(last_a.id, JobStatus.RUNNING)
    only_b = store.create_job("wl-b", "c1", {})
    other_client = store.create_job("wl-a", "c2", {})

    summary = {(w.workload_id, w.client_id): w for w in store.workloads()}
    assert set(summary) == {("wl-a", "c1"), ("wl-b", "c1"), ("wl-a", "c2")}
    a = summary[("wl-a", "c1")]
    assert (a.num_jobs, a.last_job_id, a.last_status, a.last_created_at) == (
        2,
        last_a.id,
        JobStatus.RUNNING,
        last_a.created_at,
    )
    assert summary[("wl-b", "c1")].last_job_id == only_b.id
    assert [w.last_job_id for w in store.workloads()] == [other_client.id, only_b.id, last_a.id]


# Opening ----------------------------------------------------------------------------------------------
def test_open_job_store_defaults_to_sqlite_under_home(settings: Settings) -> None:
    with open_job_store(settings) as store:
        job = store.create_job("w", "c", {})
        assert store.dialect == "sqlite"
    assert (settings.home / "jobs.db").is_file()
    with JobStore.from_settings(settings) as again:
        assert again.get_job(job.id) == job


def test_open_job_store_uses_the_configured_url(settings: Settings, tmp_path: Path) -> None:
    settings.job_store.url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with open_job_store(settings) as store:
        store.create_job("w", "c", {})
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (settings.home / "jobs.db").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://fw:s3cret@127.0.0.1:1/jobs", "fw:***@127.0.0.1:1/jobs"),
        ("sqlite:////nonexistent-dir/deeper/jobs.db", "/nonexistent-dir/deeper/jobs.db"),
        ("mysql://fw:s3cret@localhost/jobs", "mysql://fw:***@localhost/jobs"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_unreachable_or_bad_url_is_a_store_error_naming_it(url: str, expected: str) -> None:
    with pytest.raises(StoreError) as info:
        JobStore(url)
    assert expected in str(info.value)
    assert "s3cret" not in str(info.value)
