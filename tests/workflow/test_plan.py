"""The stage graph of a job."""

from __future__ import annotations

import pytest

from dataflywheel.workflow.plan import (
    Queue,
    Resource,
    StageKind,
    parse_stage_key,
    plan_feedback,
    plan_job,
    stage_key,
    stage_queue,
)


def test_every_stage_follows_its_dependencies_and_customize_overlaps_the_evals() -> None:
    plan = plan_job(["a", "b/c:1"])
    seen: set[str] = set()
    for spec in plan:
        assert set(spec.deps) <= seen, spec.key
        seen.add(spec.key)
    by_key = {s.key: s for s in plan}
    # Trains while the base and ICL evals run, but only once the judge check has passed or been skipped.
    assert by_key["customize:a"].deps == ("datasets", "judge")
    assert set(by_key["customized-eval:a"].deps) == {"deploy:a", "customize:a"}
    assert set(by_key["shutdown:a"].deps) == {"deploy:a", "base-eval:a", "icl-eval:a", "customized-eval:a"}
    assert by_key["deploy:a"].resources == (Resource.MODEL_SLOT,) and by_key["deploy:a"].queue == Queue.ACCELERATOR
    assert by_key["customize:a"].resources == (Resource.TRAINING_SLOT, Resource.COMPUTE_SLOT)
    assert by_key["base-eval:a"].resources == (Resource.COMPUTE_SLOT,)
    assert by_key["base-eval:a"].queue == Queue.CPU
    assert plan[-1].kind == StageKind.FINALIZE and {"shutdown:a", "shutdown:b/c:1"} <= set(plan[-1].deps)
    assert [s.key for s in plan if s.critical] == ["datasets", "judge"]


def test_a_candidate_that_cannot_be_customized_has_no_customize_stages() -> None:
    keys = [s.key for s in plan_job(["remote"], {"remote": False})]
    assert "customize:remote" not in keys and "customized-eval:remote" not in keys
    assert "base-eval:remote" in keys and "icl-eval:remote" in keys


@pytest.mark.parametrize("candidate", [None, "smollm2", "org/model:v1@x"])
def test_stage_keys_round_trip(candidate: str | None) -> None:
    key = stage_key(StageKind.CUSTOMIZED_EVAL, candidate)
    assert parse_stage_key(key) == (StageKind.CUSTOMIZED_EVAL, candidate)


def test_the_stages_that_hold_a_model_go_to_the_accelerator_queue_the_rest_to_the_cpu_queue() -> None:
    accelerator = {StageKind.DEPLOY, StageKind.CUSTOMIZE, StageKind.SHUTDOWN}
    for spec in plan_job(["a", "remote"], {"remote": False}):
        assert spec.queue == stage_queue(spec.kind) == (Queue.ACCELERATOR if spec.kind in accelerator else Queue.CPU)
    (feedback,) = plan_feedback()
    assert feedback.queue == Queue.ACCELERATOR
