"""Load JSONL log files (or decoded JSON values) into a log store, line by line.

Every line is decoded and validated on its own: a bad line is reported with its number and reason and
skipped, the good ones are stored in batches. A record the log store itself refuses (see
:class:`~dataflywheel.logstore.base.RejectedRecord`) is reported the same way, by its line, while the rest
of its batch is stored: one bad line never costs its neighbours. Re-loading a file adds nothing new
(records are identified by content, see :func:`~dataflywheel.records.model.record_id`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from typing_extensions import Unpack

from dataflywheel.errors import RecordError
from dataflywheel.logstore.base import AddTotals, LogStore
from dataflywheel.progress import Progress
from dataflywheel.records.jsonvalue import JsonObject, attributes
from dataflywheel.records.model import LogRecord, RecordOverrides, parse_record

MAX_REPORTED_ERRORS = 1000


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, kw_only=True)
class IngestProgress(Progress):
    """How far a load is (:class:`~dataflywheel.progress.Progress`: stage ``load``, ``done`` and ``total`` in
    bytes of input, ``total`` None for a stream of unknown length), with the records stored so far. Sent after
    every batch."""

    stage: str = "load"
    unit: str = "bytes"
    records: int = 0
    """Records stored so far (new ones and duplicates of stored ones)."""
    skipped: int = 0
    """Lines skipped so far (bad lines, records the store refused)."""


IngestProgressFn = Callable[[IngestProgress], None]
"""The load's progress callback (a :data:`~dataflywheel.progress.ProgressFn` fits too)."""


@dataclass
class IngestReport:
    lines: int = 0
    blank: int = 0
    store: AddTotals = field(default_factory=AddTotals)
    """What the log store did with the good lines' records (published as ``loaded`` and ``duplicates``)."""
    skipped: int = 0
    """Lines not stored: bad lines and records the store rejected."""
    errors: list[LineError] = field(default_factory=list)
    workloads: dict[str, int] = field(default_factory=dict)
    """Records stored or already stored per ``workload_id/client_id``."""

    def refuse(self, line: int, reason: str) -> None:
        """Count a line that was not stored (its reason kept for the first :data:`MAX_REPORTED_ERRORS`)."""
        self.skipped += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, reason))

    def to_dict(self) -> JsonObject:
        return {
            "lines": self.lines,
            "loaded": self.store.added,
            "duplicates": self.store.duplicates,
            **attributes(self, "skipped", "blank"),
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
            "errors_truncated": self.skipped > len(self.errors),
            "workloads": dict(sorted(self.workloads.items())),
        }


def describe_json_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    """Why a line is not JSON, with where: the byte of invalid UTF-8, the end of a truncated record, or the
    character at which the JSON goes wrong."""
    text = line.rstrip(b"\r\n")
    bad_utf8 = utf8_problem(text)
    if bad_utf8 is not None:
        return bad_utf8
    if text[:1] in (b"{", b"[") and exc.pos >= len(text) - 1:
        return f"truncated JSON: the line ends before the record does ({len(text)} characters)"
    return f"not valid JSON: {exc.msg} at character {exc.pos + 1}"


def utf8_problem(data: bytes) -> str | None:
    """Where ``data`` stops being UTF-8 (1-based byte offset and the byte), or None when it is UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{data[exc.start]:02x} at byte {exc.start + 1} ({exc.reason})"
    return None


def parse_lines(
    lines: Iterable[bytes], report: IngestReport, **overrides: Unpack[RecordOverrides]
) -> Iterator[tuple[int, LogRecord]]:
    """Decode and validate lines (with :func:`~dataflywheel.records.model.parse_record`'s ``overrides``),
    yielding ``(line number, record)`` for good ones and noting bad ones in ``report``."""
    for number, line in enumerate(lines, start=1):
        report.lines = number
        if not line.strip():
            report.blank += 1
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            report.refuse(number, describe_json_error(line, exc))
            continue
        record = _validated(number, obj, report, overrides)
        if record is not None:
            yield number, record


def parse_values(
    values: Iterable[Any], report: IngestReport, **overrides: Unpack[RecordOverrides]
) -> Iterator[tuple[int, LogRecord]]:
    """Validate decoded JSON values (a JSON array's items: the line is the 1-based position), like
    :func:`parse_lines`."""
    for number, obj in enumerate(values, start=1):
        report.lines = number
        record = _validated(number, obj, report, overrides)
        if record is not None:
            yield number, record


def _validated(number: int, obj: Any, report: IngestReport, overrides: RecordOverrides) -> LogRecord | None:
    try:
        return parse_record(obj, **overrides)
    except RecordError as exc:
        report.refuse(number, str(exc))
        return None


def store_records(
    store: LogStore,
    records: Iterable[tuple[int, LogRecord]],
    report: IngestReport,
    *,
    batch_size: int = 1000,
    on_batch: Callable[[IngestReport], None] | None = None,
) -> IngestReport:
    """Store numbered records in batches; a record the store rejects is reported by its line number."""
    batch: list[tuple[int, LogRecord]] = []
    for item in records:
        batch.append(item)
        if len(batch) >= batch_size:
            _flush(store, batch, report)
            if on_batch:
                on_batch(report)
    _flush(store, batch, report)
    if on_batch:
        on_batch(report)
    return report


def _flush(store: LogStore, batch: list[tuple[int, LogRecord]], report: IngestReport) -> None:
    if not batch:
        return
    result = store.add([record for _, record in batch])
    report.store.add(result)
    refused = {r.index: r.reason for r in result.rejected}
    for index, (number, record) in enumerate(batch):
        if index in refused:
            report.refuse(number, refused[index])
        else:
            key = f"{record.workload_id}/{record.client_id}"
            report.workloads[key] = report.workloads.get(key, 0) + 1
    if refused:
        # Reported in line order, wherever their batches put them.
        report.errors.sort(key=lambda e: e.line)
    batch.clear()


def load_stream(
    store: LogStore,
    stream: IO[bytes],
    *,
    batch_size: int = 1000,
    progress: IngestProgressFn | None = None,
    size: int | None = None,
    **overrides: Unpack[RecordOverrides],
) -> IngestReport:
    """Load every good line of ``stream`` into ``store`` (with :func:`parse_lines`' ``overrides``);
    ``progress`` gets an :class:`IngestProgress` after each batch (``size``: the stream's length in bytes,
    when known)."""
    report = IngestReport()
    consumed = 0

    def counted() -> Iterator[bytes]:
        nonlocal consumed
        for line in stream:
            consumed += len(line)
            yield line

    records = parse_lines(counted(), report, **overrides)

    def batch_done(rep: IngestReport) -> None:
        if progress is not None:
            progress(IngestProgress(done=consumed, total=size, records=rep.store.accepted, skipped=rep.skipped))

    return store_records(store, records, report, batch_size=batch_size, on_batch=batch_done)


def load_values(
    store: LogStore,
    values: Iterable[Any],
    *,
    batch_size: int = 1000,
    **overrides: Unpack[RecordOverrides],
) -> IngestReport:
    """Load decoded records (a JSON array's items; errors name their 1-based positions) into ``store``, with
    :func:`parse_values`' ``overrides``."""
    report = IngestReport()
    records = parse_values(values, report, **overrides)
    return store_records(store, records, report, batch_size=batch_size)


def load_file(
    store: LogStore,
    path: str | Path,
    *,
    workload_id: str | None = None,
    client_id: str | None = None,
    batch_size: int = 1000,
    progress: IngestProgressFn | None = None,
) -> IngestReport:
    """Load a JSONL file. Records in conversation form, which carry no time, get the file's mtime;
    ``progress`` as for :func:`load_stream`, its total the file's size."""
    p = Path(path)
    stat = p.stat()
    mtime = int(stat.st_mtime)
    with p.open("rb") as f:
        return load_stream(
            store,
            f,
            workload_id=workload_id,
            client_id=client_id,
            default_timestamp=mtime,
            batch_size=batch_size,
            progress=progress,
            size=stat.st_size,
        )
