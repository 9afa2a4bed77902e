"""The store's update methods take typed keyword arguments (no ``**fields``): a field left out is unchanged,
None clears a nullable one, and an unknown name is a TypeError before anything is written."""

from __future__ import annotations

import inspect

import pytest

from dataflywheel.jobs import JobStore, TaskStatus
from dataflywheel.jobs.store import UNSET

UPDATERS = ("update_job", "update_candidate_run", "upsert_evaluation", "upsert_customization", "upsert_judge")


def test_no_update_method_takes_arbitrary_fields() -> None:
    for name in UPDATERS:
        params = inspect.signature(getattr(JobStore, name)).parameters.values()
        assert not [p for p in params if p.kind is p.VAR_KEYWORD], name
        assert all(p.annotation != "Any" for p in params if p.kind is p.KEYWORD_ONLY), name


def test_left_out_is_unchanged_and_none_clears(store: JobStore) -> None:
    job = store.create_job("w", "c", {})
    run = store.add_candidate_run(job.id, "m")
    ev = store.upsert_evaluation(run.id, "base-eval", status=TaskStatus.RUNNING, total=10, done=2, eta_s=30.0)
    ev = store.upsert_evaluation(run.id, "base-eval", done=3)  # eta_s not given: kept
    assert (ev.done, ev.total, ev.eta_s) == (3, 10, 30.0)
    ev = store.upsert_evaluation(run.id, "base-eval", eta_s=None)  # given as None: cleared
    assert (ev.done, ev.eta_s) == (3, None)
    assert store.upsert_evaluation(run.id, "base-eval", eta_s=UNSET).eta_s is None
    with pytest.raises(TypeError, match="steps_completed"):
        store.upsert_evaluation(run.id, "base-eval", steps_completed=1)  # type: ignore[call-arg]
