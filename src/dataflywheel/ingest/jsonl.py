"""Load JSONL log files into a log store, line by line.

Every line is decoded and validated on its own: a bad line is reported with its number and reason and
skipped, the good ones are stored in batches. Re-loading a file adds nothing new (records are identified
by content, see :func:`~dataflywheel.records.model.record_id`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from dataflywheel.errors import RecordError
from dataflywheel.logstore.base import AddResult, LogStore
from dataflywheel.records.model import LogRecord, parse_record

MAX_REPORTED_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class IngestReport:
    lines: int = 0
    blank: int = 0
    loaded: int = 0
    duplicates: int = 0
    skipped: int = 0
    errors: list[LineError] = field(default_factory=list)
    workloads: dict[str, int] = field(default_factory=dict)
    """Records read per ``workload_id/client_id``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "loaded": self.loaded,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "blank": self.blank,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
            "errors_truncated": self.skipped > len(self.errors),
            "workloads": dict(sorted(self.workloads.items())),
        }


def describe_json_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    text = line.rstrip(b"\r\n")
    if text[:1] in (b"{", b"[") and exc.pos >= len(text) - 1:
        return f"truncated JSON: the line ends before the record does ({len(text)} characters)"
    return f"not valid JSON: {exc.msg} at character {exc.pos + 1}"


def parse_lines(
    lines: Iterable[bytes],
    report: IngestReport,
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    default_timestamp: int | float | None = None,
) -> Iterator[LogRecord]:
    """Decode and validate lines, yielding good records and noting bad ones in ``report``."""
    for number, line in enumerate(lines, start=1):
        report.lines = number
        if not line.strip():
            report.blank += 1
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            _bad(report, number, describe_json_error(line, exc))
            continue
        try:
            record = parse_record(
                obj, workload_id=workload_id, client_id=client_id, default_timestamp=default_timestamp
            )
        except RecordError as exc:
            _bad(report, number, str(exc))
            continue
        key = f"{record.workload_id}/{record.client_id}"
        report.workloads[key] = report.workloads.get(key, 0) + 1
        yield record


def _bad(report: IngestReport, line: int, reason: str) -> None:
    report.skipped += 1
    if len(report.errors) < MAX_REPORTED_ERRORS:
        report.errors.append(LineError(line, reason))


def load_stream(
    store: LogStore,
    stream: IO[bytes],
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    default_timestamp: int | float | None = None,
    batch_size: int = 1000,
    on_batch: Callable[[IngestReport, int], None] | None = None,
) -> IngestReport:
    """Load every good line of ``stream`` into ``store``; ``on_batch(report, bytes_read)`` after each batch."""
    report = IngestReport()
    consumed = 0

    def counted() -> Iterator[bytes]:
        nonlocal consumed
        for line in stream:
            consumed += len(line)
            yield line

    batch: list[LogRecord] = []
    for record in parse_lines(
        counted(), report, workload_id=workload_id, client_id=client_id, default_timestamp=default_timestamp
    ):
        batch.append(record)
        if len(batch) >= batch_size:
            _flush(store, batch, report)
            if on_batch:
                on_batch(report, consumed)
    _flush(store, batch, report)
    if on_batch:
        on_batch(report, consumed)
    return report


def _flush(store: LogStore, batch: list[LogRecord], report: IngestReport) -> None:
    if not batch:
        return
    result: AddResult = store.add(batch)
    report.loaded += result.added
    report.duplicates += result.duplicates
    batch.clear()


def load_file(
    store: LogStore,
    path: str | Path,
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    batch_size: int = 1000,
    on_batch: Callable[[IngestReport, int], None] | None = None,
) -> IngestReport:
    """Load a JSONL file. Records in conversation form, which carry no time, get the file's mtime."""
    p = Path(path)
    mtime = int(p.stat().st_mtime)
    with p.open("rb") as f:
        return load_stream(
            store,
            f,
            workload_id=workload_id,
            client_id=client_id,
            default_timestamp=mtime,
            batch_size=batch_size,
            on_batch=on_batch,
        )
