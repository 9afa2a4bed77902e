"""ORM rows to the frozen records the store returns (:mod:`dataflywheel.jobs.records` names its fields after
the columns).
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

from dataflywheel.jobs.records import (
    CandidateRunDetail,
    CandidateRunRecord,
    CustomizationRecord,
    DatasetRecord,
    EvaluationRecord,
    EventRecord,
    JobRecord,
    JudgeRecord,
    StageRecord,
)
from dataflywheel.jobs.tables import CandidateRun, Customization, Dataset, Evaluation, Job, JobEvent, JudgeRun, Stage

_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclass_fields(cls))
    return names


def columns(cls: type[Any], row: object, **values: Any) -> dict[str, Any]:
    """The values of ``row`` for the fields of record class ``cls`` (records name fields after columns), but
    those ``values`` gives (fields that are no column)."""
    return {name: getattr(row, name) for name in field_names(cls) if name not in values} | values


def job_record(j: Job) -> JobRecord:
    return JobRecord(**columns(JobRecord, j))


def run_record(r: CandidateRun) -> CandidateRunRecord:
    return CandidateRunRecord(**columns(CandidateRunRecord, r))


def run_detail(r: CandidateRun) -> CandidateRunDetail:
    return CandidateRunDetail(
        **columns(CandidateRunRecord, r),
        evaluations=tuple(eval_record(e) for e in r.evaluations),
        customization=None if r.customization is None else custom_record(r.customization),
    )


def eval_record(e: Evaluation) -> EvaluationRecord:
    return EvaluationRecord(**columns(EvaluationRecord, e))


def custom_record(c: Customization) -> CustomizationRecord:
    return CustomizationRecord(**columns(CustomizationRecord, c))


def judge_record(j: JudgeRun) -> JudgeRecord:
    return JudgeRecord(**columns(JudgeRecord, j))


def dataset_record(d: Dataset) -> DatasetRecord:
    return DatasetRecord(**columns(DatasetRecord, d))


def stage_record(st: Stage) -> StageRecord:
    return StageRecord(**columns(StageRecord, st))


def event_record(e: JobEvent) -> EventRecord:
    return EventRecord(**columns(EventRecord, e))
