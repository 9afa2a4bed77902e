"""The status enums and their transition tables."""

from __future__ import annotations

from enum import StrEnum

import pytest

from dataflywheel.errors import FlywheelError
from dataflywheel.jobs import (
    CANDIDATE_TERMINAL,
    CANDIDATE_TRANSITIONS,
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    CandidateStage,
    IllegalTransitionError,
    JobKind,
    JobStatus,
    TaskStatus,
    allowed_next,
    check_transition,
)

TABLES = [
    (JobStatus, JOB_TRANSITIONS, JOB_TERMINAL),
    (CandidateStage, CANDIDATE_TRANSITIONS, CANDIDATE_TERMINAL),
    (TaskStatus, TASK_TRANSITIONS, TASK_TERMINAL),
]


def test_enum_values_are_the_documented_strings() -> None:
    assert [s.value for s in JobStatus] == [
        "pending",
        "running",
        "cancelling",
        "completed",
        "failed",
        "cancelled",
        "crashed",
    ]
    assert [s.value for s in CandidateStage] == [
        "pending",
        "deploying",
        "evaluating",
        "customizing",
        "shutting_down",
        "completed",
        "failed",
        "cancelled",
    ]
    assert [s.value for s in TaskStatus] == [
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
        "skipped",
        "crashed",
    ]
    assert [k.value for k in JobKind] == ["flywheel", "feedback"]
    assert JobStatus("running") is JobStatus.RUNNING
    assert JobStatus.RUNNING == "running"  # type: ignore[comparison-overlap]


@pytest.mark.parametrize(("enum", "table", "terminal"), TABLES)
def test_every_status_has_a_row_and_terminal_ones_lead_nowhere(
    enum: type[StrEnum], table: dict[StrEnum, frozenset[StrEnum]], terminal: frozenset[StrEnum]
) -> None:
    assert set(table) == set(enum)
    for status, targets in table.items():
        assert status not in targets, f"{status} lists itself"
        assert targets <= set(enum)
        assert (not targets) == (status in terminal), status
        assert status.terminal == (status in terminal)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("enum", "table", "terminal"), TABLES)
def test_check_transition_agrees_with_the_table(
    enum: type[StrEnum], table: dict[StrEnum, frozenset[StrEnum]], terminal: frozenset[StrEnum]
) -> None:
    for old in enum:
        assert allowed_next(old) == table[old]  # type: ignore[type-var]
        for new in enum:
            if old == new or new in table[old]:
                check_transition("thing", old, new)  # type: ignore[type-var]
            else:
                with pytest.raises(IllegalTransitionError):
                    check_transition("thing", old, new)  # type: ignore[type-var]


def test_job_transitions_match_the_lifecycle() -> None:
    legal = [
        ("pending", "running"),
        ("pending", "cancelling"),
        ("pending", "cancelled"),
        ("pending", "failed"),
        ("running", "cancelling"),
        ("running", "completed"),
        ("running", "failed"),
        ("running", "pending"),  # re-queued after its worker died
        ("cancelling", "cancelled"),
        ("cancelling", "failed"),
    ]
    for old, new in legal:
        check_transition("job", JobStatus(old), JobStatus(new))
    illegal = [
        ("pending", "completed"),
        ("cancelling", "completed"),
        ("cancelling", "running"),
        ("completed", "running"),
        ("failed", "pending"),
        ("cancelled", "running"),
    ]
    for old, new in illegal:
        with pytest.raises(IllegalTransitionError):
            check_transition("job", JobStatus(old), JobStatus(new))


def test_same_status_is_a_no_op_even_when_terminal() -> None:
    for status in JobStatus:
        check_transition("job x", status, status)


def test_error_names_entity_old_and_new() -> None:
    with pytest.raises(IllegalTransitionError) as info:
        check_transition("job 3f2a", JobStatus.COMPLETED, JobStatus.RUNNING)
    err = info.value
    assert isinstance(err, FlywheelError)
    assert (err.entity, err.old, err.new) == ("job 3f2a", "completed", "running")
    assert "job 3f2a" in str(err) and "completed" in str(err) and "running" in str(err)
    assert "terminal" in str(err)

    with pytest.raises(IllegalTransitionError, match=r"may go to cancelled, crashed, failed"):
        check_transition("job 3f2a", JobStatus.CANCELLING, JobStatus.COMPLETED)


def test_candidate_stages_alternate_and_may_be_requeued() -> None:
    path = ["deploying", "evaluating", "customizing", "deploying", "evaluating", "shutting_down", "completed"]
    old = CandidateStage.PENDING
    for name in path:
        new = CandidateStage(name)
        check_transition("candidate", old, new)
        old = new
    check_transition("candidate", CandidateStage.EVALUATING, CandidateStage.PENDING)
    with pytest.raises(IllegalTransitionError):
        check_transition("candidate", CandidateStage.SHUTTING_DOWN, CandidateStage.DEPLOYING)


def test_mixing_enums_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        check_transition("x", JobStatus.PENDING, TaskStatus.RUNNING)  # type: ignore[type-var]
