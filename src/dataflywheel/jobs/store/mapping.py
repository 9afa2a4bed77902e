"""ORM rows to the frozen records the store returns (:mod:`dataflywheel.jobs.records` names its fields after
the columns).
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any, TypeVar

from dataflywheel.jobs.records import CandidateRunDetail, CandidateRunRecord, CustomizationRecord, EvaluationRecord
from dataflywheel.jobs.tables import CandidateRun

_R = TypeVar("_R")

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


def to_record(cls: type[_R], row: object) -> _R:
    """The record ``cls`` of an ORM row (each field read from the column of the same name)."""
    return cls(**columns(cls, row))


def run_detail(r: CandidateRun) -> CandidateRunDetail:
    return CandidateRunDetail(
        **columns(CandidateRunRecord, r),
        evaluations=tuple(to_record(EvaluationRecord, e) for e in r.evaluations),
        customization=None if r.customization is None else to_record(CustomizationRecord, r.customization),
    )
