"""One live job view: ``flywheel jobs watch`` (over HTTP) and ``flywheel run``/``demo``/``feedback`` (their
own job store) render a job through :mod:`dataflywheel.cli.job_view`, from the API's job shape."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from dataflywheel.api.schemas import JobDetailPublic
from dataflywheel.cli import feedback, job_view, jobs, run
from dataflywheel.jobs import JobStatus, JobStore, TaskStatus
from dataflywheel.jobs.status import JobKind


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(job_view, "console", Console(file=out, width=140, force_terminal=False))
    return out


def test_every_command_follows_a_job_with_the_same_view() -> None:
    assert run.follow_job is job_view.follow_job and feedback.follow_job is job_view.follow_job
    assert jobs.follow is job_view.follow


def test_a_flywheel_job_shows_its_candidates_tasks_until_it_ends(tmp_path: Path, screen: io.StringIO) -> None:
    with JobStore(f"sqlite:///{tmp_path / 'jobs.db'}") as store:
        job = store.create_job("w", "c", {"candidates": ["m"]})
        run_ = store.add_candidate_run(job.id, "m")
        store.set_job_status(job.id, JobStatus.RUNNING)
        store.upsert_evaluation(run_.id, "base-eval", status=TaskStatus.RUNNING, total=4, done=3, progress=75.0)
        states: list[JobDetailPublic] = []

        def poll() -> JobDetailPublic:
            if states:  # the second poll finds it ended
                store.set_job_status(job.id, JobStatus.FAILED, error="boom")
            states.append(job_view.local_job(store, job.id))
            return states[-1]

        ended = job_view.follow(poll, interval=0.01)
    assert ended.status == "failed" and len(states) == 2
    shown = screen.getvalue()
    assert f"job {job.id[:12]}" in shown and "base-eval" in shown and "3/4 samples" in shown and "boom" in shown


def test_a_feedback_job_is_one_bar_with_the_loops_own_progress(tmp_path: Path, screen: io.StringIO) -> None:
    with JobStore(f"sqlite:///{tmp_path / 'jobs.db'}") as store:
        job = store.create_job("w", "c", {"model": "m"}, kind=JobKind.FEEDBACK)
        store.set_job_status(job.id, JobStatus.RUNNING)
        store.update_job(job.id, progress=42.5)
        shown = job_view.local_job(store, job.id)
        assert shown.progress == 42.5  # not the flywheel task count's 0
        store.set_job_status(job.id, JobStatus.COMPLETED)
        job_view.follow(lambda: job_view.local_job(store, job.id), interval=0.01, started=0.0)
    out = screen.getvalue()
    assert f"job {job.id[:12]}" in out and "100%" in out and "datasets" not in out
