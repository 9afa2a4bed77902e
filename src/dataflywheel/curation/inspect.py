"""Per-record inspection: everything curation needs to know about one record, as a pure function.

:func:`inspect_batch` decodes a batch of raw records and, for each, normalizes its tool calls, checks the
OpenAI format and the tool-call quality, and computes its class label, dedup key, last user query and the
serialized parts of its training row. It holds no state between batches, so batches can run in worker
processes (:mod:`dataflywheel.datasets.scan`) while the stateful decisions (dedup, limit, workload type)
stay in one place, the :class:`~dataflywheel.curation.curate.Curator`.

A batch's result carries the parts many rows share (system message, tool schemas) once, in
``Batch.shared``; records refer to them by index, so a worker sends back ~0.5 KB per record, not ~5 KB.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import orjson

from dataflywheel.curation.dedup import dedup_key
from dataflywheel.curation.quality import tool_call_problem
from dataflywheel.curation.training_format import to_training_row
from dataflywheel.curation.validate import format_problem
from dataflywheel.errors import RecordError
from dataflywheel.records.chat import label_of_calls, response_tool_calls, user_query
from dataflywheel.records.model import coerce_timestamp, decode_record
from dataflywheel.records.provenance import Answerer, response_from
from dataflywheel.records.toolcalls import normalize_record_tool_calls
from dataflywheel.settings import DataSplitSettings, DedupMode

NONE = -1
_SHARED_ROLES = frozenset({"system", "developer"})
_SORT = orjson.OPT_SORT_KEYS


@dataclass(frozen=True)
class InspectConfig:
    """The settings inspection depends on (picklable, sent once to each worker)."""

    max_tool_properties: int | None
    parse_function_arguments: bool
    dedup: DedupMode

    @classmethod
    def of(cls, settings: DataSplitSettings) -> InspectConfig:
        return cls(settings.max_tool_properties, settings.parse_function_arguments, settings.dedup)


class Usable(NamedTuple):
    """A record in valid OpenAI format whose tool calls (if any) are usable."""

    timestamp: float
    has_tool_calls: bool
    label: str
    query: str | None
    dedup_key: bytes | None
    system: int
    """Index into ``Batch.shared`` of the serialized system message, or NONE."""
    body: bytes
    """Serialized non-system messages of the training row, comma-joined."""
    tools: int
    """Index into ``Batch.shared`` of the serialized tool schemas, or NONE."""


class DropStage(StrEnum):
    """The curation step that dropped a record (its drop reasons read ``<stage>: <reason>``)."""

    INVALID_FORMAT = "invalid_format"
    """Not an OpenAI chat completion a model can be trained or scored on (bad JSON, no messages, no answer)."""
    QUALITY = "quality"
    """Well formed but not fit to learn from: a tool call that cannot be read, an answer by a promoted candidate,
    a text answer in a tool-calling workload."""
    DUPLICATE = "duplicate"
    """The same conversation as a record already selected (the same dedup key)."""


class Rejected(NamedTuple):
    stage: DropStage
    """``INVALID_FORMAT`` or ``QUALITY``."""
    reason: str
    timestamp: float = 0.0
    """A quality rejection's timestamp (a well-formed call of the big model still counts as traffic); 0: none."""


Inspected = Usable | Rejected


class _SharedParts:
    """Collects the distinct shared parts of one batch; a one-entry equality cache in front of
    serialization, since comparing with the previous record's value is cheaper than serializing it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self._last: dict[str, tuple[Any, int]] = {}

    def index_of(self, kind: str, value: Any) -> int:
        last = self._last.get(kind)
        if last is not None and last[0] == value:
            return last[1]
        data = orjson.dumps(value, option=_SORT)
        idx = self._index.get(data)
        if idx is None:
            idx = len(self.parts)
            self.parts.append(data)
            self._index[data] = idx
        self._last[kind] = (value, idx)
        return idx


class Batch(NamedTuple):
    shared: list[bytes]
    records: list[Inspected]


def inspect_record(record: Any, config: InspectConfig, shared: _SharedParts) -> Inspected:
    """Inspect one decoded record (normalized in place)."""
    if isinstance(record, dict):
        normalize_record_tool_calls(record)
    problem = format_problem(record, config.max_tool_properties)
    if problem is not None:
        return Rejected(DropStage.INVALID_FORMAT, problem)
    timestamp = epoch_seconds(record.get("timestamp"))
    if answered_by_candidate(record):
        return Rejected(DropStage.QUALITY, "answered by a promoted candidate, not the logged model", timestamp)
    calls = response_tool_calls(record)
    if calls:
        problem = tool_call_problem(calls, config.parse_function_arguments)
        if problem is not None:
            return Rejected(DropStage.QUALITY, problem, timestamp)
    row = to_training_row(record)
    messages = row["messages"]
    system = NONE
    if messages and messages[0].get("role") in _SHARED_ROLES:
        system = shared.index_of("system", messages[0])
        messages = messages[1:]
    # One exact-size bytes object: orjson returns over-allocated buffers (~4 KB for a 300-byte message).
    body = bytes(memoryview(b",".join([orjson.dumps(m, option=_SORT) for m in messages])))
    tools = row.get("tools")
    return Usable(
        timestamp=timestamp,
        has_tool_calls=bool(calls),
        label=label_of_calls(calls),
        query=user_query(record),
        dedup_key=dedup_key(record, config.dedup),
        system=system,
        body=body,
        tools=shared.index_of("tools", tools) if tools is not None else NONE,
    )


def answered_by_candidate(record: Any) -> bool:
    """Whether the logging proxy stored a promoted candidate's answer as the record's response (full routing,
    or a canary without ``proxy.canary_compare``): training on it would teach a student its own answers."""
    return response_from(record) is Answerer.CANDIDATE


def epoch_seconds(value: Any) -> float:
    """A record's timestamp as epoch seconds (numbers, numeric or ISO 8601 strings); 0.0 when it has none
    or it cannot be read (ordering and traffic then leave it out)."""
    try:
        return float(coerce_timestamp(value))
    except RecordError:
        return 0.0


def inspect_batch(raws: list[bytes], config: InspectConfig) -> Batch:
    """Decode and inspect raw JSON records; a line that is not JSON is rejected with the reason."""
    shared = _SharedParts()
    out: list[Inspected] = []
    for raw in raws:
        try:
            record = decode_record(raw)
        except orjson.JSONDecodeError as exc:
            out.append(Rejected(DropStage.INVALID_FORMAT, f"not valid JSON: {exc.msg}"))
            continue
        out.append(inspect_record(record, config, shared))
    return Batch(shared.parts, out)


def inspect_records(records: list[Any], config: InspectConfig) -> Batch:
    """Inspect already decoded records (for in-memory use)."""
    shared = _SharedParts()
    return Batch(shared.parts, [inspect_record(r, config, shared) for r in records])
