"""The two sides of a drift check, read at the I/O edge: the reference (the newest dataset build of the
workload: its manifest's classes, the tools and queries of its rows) and the logs logged after it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from dataflywheel.datasets.artifacts import read_manifest
from dataflywheel.drift.metrics import tool_fingerprints
from dataflywheel.errors import CurationError, RecordError
from dataflywheel.jobs.records import DatasetRecord
from dataflywheel.logstore.base import LogQuery, LogStore
from dataflywheel.records.chat import last_user_text, tool_name, user_query
from dataflywheel.records.model import coerce_timestamp

__all__ = ["Reference", "Sample", "SampleBuilder", "load_current", "load_reference"]

_REFERENCE_FILES = ("eval.jsonl", "train.jsonl")


@dataclass(frozen=True)
class Sample:
    """What one side of the check holds: tool classes, tool definitions offered, user queries."""

    records: int
    classes: dict[str, int]
    """``{tool class: records}``."""
    schemas: dict[str, dict[str, int]]
    """``{tool name: {definition hash: records offering it}}``."""
    queries: tuple[str, ...]


@dataclass(frozen=True)
class Reference:
    """The dataset a drift check compares with."""

    job_id: str
    build_id: str | None
    newest_timestamp: float | None
    """The newest record of the dataset: new logs are those after it."""
    sample: Sample


class SampleBuilder:
    """Accumulates records (or training rows) into a :class:`Sample`."""

    def __init__(self) -> None:
        self.records = 0
        self.classes: dict[str, int] = {}
        self.schemas: dict[str, dict[str, int]] = {}
        self.queries: list[str] = []

    def add(self, *, label: str | None, tools: Any, query: str | None) -> None:
        self.records += 1
        if label is not None:
            self.classes[label] = self.classes.get(label, 0) + 1
        for name, digest in tool_fingerprints(tools).items():
            seen = self.schemas.setdefault(name, {})
            seen[digest] = seen.get(digest, 0) + 1
        if query:
            self.queries.append(query)

    def add_record(self, record: Mapping[str, Any]) -> None:
        """A log record (or an eval row, which is one): its class, offered tools and last user query."""
        request = record.get("request")
        tools = request.get("tools") if isinstance(request, dict) else None
        self.add(label=tool_name(record), tools=tools, query=user_query(record))

    def build(self, classes: Mapping[str, int] | None = None) -> Sample:
        return Sample(
            records=self.records,
            classes=dict(classes if classes is not None else self.classes),
            schemas={k: dict(v) for k, v in self.schemas.items()},
            queries=tuple(self.queries),
        )


def _row_query(row: Mapping[str, Any]) -> str | None:
    """The last user message of a training row (its final message is the answer)."""
    return last_user_text(row.get("messages"))


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    with path.open("rb") as f:
        for line in f:
            if line.strip():
                row = orjson.loads(line)
                if isinstance(row, dict):
                    yield row


def load_reference(dataset: DatasetRecord, limit: int) -> Reference:
    """The reference of the build that ``dataset`` (a job's eval dataset) belongs to: the classes of all its
    selected records (from the manifest), and the tools and queries of up to ``limit`` of its rows (eval,
    then train). :class:`CurationError` when the build folder is gone or unreadable."""
    if dataset.path is None:
        raise CurationError(f"job {dataset.job_id}: its {dataset.name} dataset has no path")
    build = Path(dataset.path).parent
    try:
        manifest = read_manifest(build)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise CurationError(f"job {dataset.job_id}: cannot read the manifest of dataset build {build}: {exc}") from None
    builder = SampleBuilder()
    eval_rows: Iterable[dict[str, Any]] = _rows(build / _REFERENCE_FILES[0])
    for row in islice(eval_rows, limit):
        builder.add_record(row)
    for row in islice(_rows(build / _REFERENCE_FILES[1]), max(0, limit - builder.records)):
        builder.add(label=None, tools=row.get("tools"), query=_row_query(row))
    classes = manifest.get("classes", {}).get("all") or builder.classes
    newest = manifest.get("time_range", {}).get("newest")
    return Reference(
        job_id=dataset.job_id,
        build_id=dataset.build_id or manifest.get("build_id"),
        newest_timestamp=float(newest) if isinstance(newest, int | float) else None,
        sample=builder.build({str(k): int(v) for k, v in classes.items()}),
    )


def _epoch(value: Any) -> float:
    try:
        return float(coerce_timestamp(value))
    except RecordError:
        return 0.0


def load_current(logs: LogStore, workload_id: str, client_id: str, since: float | None, limit: int) -> Sample:
    """Up to ``limit`` records of the workload logged after ``since`` (all when None), newest first."""
    builder = SampleBuilder()
    query = LogQuery(workload_id, client_id, since=since, limit=limit)
    for _, record in logs.iter_records(query):
        if since is not None and _epoch(record.get("timestamp")) <= since:
            continue  # `since` is inclusive: the dataset's newest record itself is not new
        builder.add_record(record)
    return builder.build()
