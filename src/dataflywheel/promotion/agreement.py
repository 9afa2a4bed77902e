"""Live agreement: how often the promoted candidate calls the same functions as the big model on the
workload's real traffic, per day (UTC) and candidate model, from the proxy's logged calls.

A call counts when both answered it: shadow calls, and canary calls whose other model was asked too
(``proxy.canary_compare``). The big model's answer is the record's ``response`` (``response_from:
teacher``); the candidate's are its tool names (``proxy.candidate.calls``). They agree when the names are the
same, in the same order (two text answers agree), as the evals' ``function_name_accuracy`` scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dataflywheel.logstore.base import LogQuery, LogStore
from dataflywheel.records.chat import response_tool_calls
from dataflywheel.records.provenance import PROXY_FIELD, Answerer, response_from


@dataclass(frozen=True, slots=True)
class DayAgreement:
    day: str
    """The UTC date, ``YYYY-MM-DD``."""
    model: str
    """The candidate model (as served) these calls compared."""
    calls: int
    """Logged calls where the candidate was asked."""
    answered_by_candidate: int
    compared: int
    """Calls where both answered (the candidate without error)."""
    agreed: int
    candidate_errors: int

    @property
    def rate(self) -> float | None:
        return self.agreed / self.compared if self.compared else None


def _names(calls: Iterable[Any]) -> list[str]:
    out = []
    for call in calls:
        fn = call.get("function") if isinstance(call, Mapping) else None
        name = fn.get("name") if isinstance(fn, Mapping) else None
        out.append(name if isinstance(name, str) else "")
    return out


def agreement_by_day(records: Iterable[Mapping[str, Any]]) -> list[DayAgreement]:
    """Agreement per day and candidate model of logged proxy calls, oldest day first."""
    tally: dict[tuple[str, str], list[int]] = {}
    for record in records:
        info = record.get(PROXY_FIELD)
        candidate = info.get("candidate") if isinstance(info, Mapping) else None
        if not isinstance(info, Mapping) or not isinstance(candidate, Mapping):
            continue
        ts = record.get("timestamp")
        if not isinstance(ts, int | float):
            continue
        day = datetime.fromtimestamp(ts, UTC).date().isoformat()
        row = tally.setdefault((day, str(candidate.get("model") or "")), [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += info.get("answered_by") == Answerer.CANDIDATE.value
        if candidate.get("error") is not None:
            row[4] += 1
            continue
        if response_from(record) is not Answerer.TEACHER:
            continue
        row[2] += 1
        teacher = _names(response_tool_calls(record))
        row[3] += teacher == list(candidate.get("calls") or [])
    return [
        DayAgreement(day, model, calls, by_candidate, compared, agreed, errors)
        for (day, model), (calls, by_candidate, compared, agreed, errors) in sorted(tally.items())
    ]


def live_agreement(
    logs: LogStore, workload_id: str, client_id: str, since: float | None = None, limit: int = 100_000
) -> list[DayAgreement]:
    """:func:`agreement_by_day` over a workload's newest ``limit`` logged calls since ``since``."""
    query = LogQuery(workload_id, client_id, since=since, limit=limit)
    return agreement_by_day(record for _, record in logs.iter_records(query))
