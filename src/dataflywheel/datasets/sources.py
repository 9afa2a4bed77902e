"""Where a dataset build reads records from: a log store query or a JSONL file.

A build reads its source twice: a first streaming pass curates every record down to compact facts, and a
second pass fetches only the selected records by reference to write them. Nothing holds every parsed
record at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from dataflywheel.errors import CurationError
from dataflywheel.logstore.base import LogQuery, LogStore
from dataflywheel.privacy.redact import Redactor
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.records.model import decode_record
from dataflywheel.records.toolcalls import normalize_record_tool_calls


class RecordSource(Protocol):
    def describe(self) -> JsonObject:
        """What was read, for the manifest."""

    def scan(self) -> Iterator[tuple[str, bytes]]:
        """``(ref, raw JSON)`` of every record, newest first where the source knows time."""

    def fetch(self, refs: Sequence[str]) -> Mapping[str, JsonObject]:
        """Decoded, normalized records by ref; raises CurationError if one has vanished."""

    def display_ref(self, ref: str) -> str:
        """How a person should see a ref in a report (``line 12``, a record id)."""


def _missing(refs: Sequence[str], found: Mapping[str, Any], where: str) -> None:
    lost = [r for r in refs if r not in found]
    if lost:
        raise CurationError(
            f"{len(lost)} selected record(s) vanished from {where} during the build (first: {lost[0]}); "
            "were they deleted meanwhile? Run the build again."
        )


class StoreSource:
    """One workload of one client in a log store, newest first."""

    def __init__(self, store: LogStore, query: LogQuery) -> None:
        self.store = store
        self.query = query

    def describe(self) -> JsonObject:
        return {"kind": "log_store", "backend": self.store.name, **self.query.describe()}

    def scan(self) -> Iterator[tuple[str, bytes]]:
        return self.store.iter_raw(self.query)

    def fetch(self, refs: Sequence[str]) -> Mapping[str, JsonObject]:
        found = {rid: normalize_record_tool_calls(decode_record(raw)) for rid, raw in self.store.fetch_raw(refs)}
        _missing(refs, found, f"the {self.store.name} log store")
        return found

    def display_ref(self, ref: str) -> str:
        return ref


class JsonlSource:
    """A JSONL file of log records (either form), in file order. Refs are ``line:offset``.

    With a ``redactor`` every line is redacted as it is read (scan and fetch alike), so a build straight from a
    file gets what the log store would have stored."""

    def __init__(self, path: str | Path, redactor: Redactor | None = None) -> None:
        self.path = Path(path)
        self.redactor = redactor
        if not self.path.is_file():
            raise CurationError(f"{self.path}: no such file")

    def describe(self) -> JsonObject:
        return {"kind": "jsonl", "path": str(self.path), "bytes": self.path.stat().st_size}

    def scan(self) -> Iterator[tuple[str, bytes]]:
        offset = 0
        with self.path.open("rb", buffering=1 << 20) as f:
            for line_no, line in enumerate(f, start=1):
                start = offset
                offset += len(line)
                if line.strip():
                    yield f"{line_no}:{start}", line if self.redactor is None else self.redactor.redact_line(line)

    def fetch(self, refs: Sequence[str]) -> Mapping[str, JsonObject]:
        found: dict[str, JsonObject] = {}
        ordered = sorted(refs, key=lambda r: int(r.partition(":")[2]))
        with self.path.open("rb") as f:
            for ref in ordered:
                f.seek(int(ref.partition(":")[2]))
                line = f.readline()
                if self.redactor is not None:
                    line = self.redactor.redact_line(line)
                found[ref] = normalize_record_tool_calls(decode_record(line))
        return found

    def display_ref(self, ref: str) -> str:
        return f"line {ref.partition(':')[0]}"
