"""Curation: validate, filter and deduplicate a stream of records, keeping only compact facts.

The :class:`Curator` is fed records newest first and keeps, for each record it selects, a
:class:`Selected` (id, label, sizes) rather than the record itself, so curating a million records needs
memory for the facts only. It stops accepting once ``limit`` records are selected (:attr:`Curator.full`).

Order of checks per record, each counted in :class:`CurationStats` with its reason:
1. OpenAI format (``invalid_format``),
2. tool-call quality, for records whose answer is a tool call (``removed_quality``),
3. text answers in a tool-calling workload: kept as class ``no_tool`` unless
   ``data_split.keep_text_answers`` is false (then ``removed_quality``, reason ``text answer``),
4. duplicates, first (newest) occurrence kept (``deduplicated``).

Whether a workload calls tools (``data_split.workload_type: auto``) is known only once a tool call has
been seen; text answers met before that wait in a pending list and are decided then, so the result is
the same as deciding with hindsight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dataflywheel.curation.inspect import DropStage, InspectConfig, Inspected, Rejected, Usable, inspect_records
from dataflywheel.curation.workload import WorkloadType
from dataflywheel.records.jsonvalue import JsonObject, attributes
from dataflywheel.settings import DataSplitSettings

_SAMPLES_PER_REASON = 5


@dataclass(slots=True)
class Selected:
    """What the rest of the build needs to know about one selected record."""

    ref: str
    """The record's id in its source (store id, or byte offset of a JSONL line)."""
    timestamp: float
    label: str
    """First tool name of the answer, or ``no_tool``."""
    query: str | None
    """Last user message (for semantic ICL selection)."""
    size: int = 0
    """Bytes of the non-system turns and the answer: a proxy for an ICL example's length."""
    row: int = -1
    """Index of the serialized training row in the build's :class:`~.rows.RowBuffer`."""


@dataclass
class CurationStats:
    total_records: int = 0
    dropped: Counter[DropStage] = field(default_factory=Counter)
    """Records dropped at each curation step (:attr:`invalid_format`, :attr:`removed_quality`,
    :attr:`deduplicated`)."""
    final_selected: int = 0
    limit_reached: bool = False
    workload_type: WorkloadType = WorkloadType.GENERIC
    reasons: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    timestamped: int = 0
    """Well-formed records read that have a timestamp (duplicates and quality rejections included): the
    workload's traffic between ``first_timestamp`` and ``last_timestamp``."""
    first_timestamp: float | None = None
    last_timestamp: float | None = None

    def saw(self, timestamp: float) -> None:
        """Count one record of the traffic at ``timestamp`` (epoch seconds; 0 or less: none)."""
        if timestamp <= 0:
            return
        self.timestamped += 1
        if self.first_timestamp is None or timestamp < self.first_timestamp:
            self.first_timestamp = timestamp
        if self.last_timestamp is None or timestamp > self.last_timestamp:
            self.last_timestamp = timestamp

    def traffic(self) -> JsonObject:
        """The manifest's ``traffic``: records read with a timestamp, the oldest and the newest (epoch s)."""
        return {
            "records": self.timestamped,
            "first_timestamp": self.first_timestamp,
            "last_timestamp": self.last_timestamp,
        }

    @property
    def invalid_format(self) -> int:
        return self.dropped[DropStage.INVALID_FORMAT]

    @property
    def removed_quality(self) -> int:
        return self.dropped[DropStage.QUALITY]

    @property
    def deduplicated(self) -> int:
        return self.dropped[DropStage.DUPLICATE]

    @property
    def valid_openai_format(self) -> int:
        return self.total_records - self.invalid_format

    def drop(self, ref: str, stage: DropStage, reason: str) -> None:
        """Count a record dropped at ``stage``, and why (with the first few refs of each kind of reason)."""
        self.dropped[stage] += 1
        key = f"{stage}: {_reason_kind(reason)}"
        self.reasons[key] += 1
        bucket = self.samples.setdefault(key, [])
        if len(bucket) < _SAMPLES_PER_REASON:
            bucket.append(f"{ref}: {reason}")

    def to_dict(self) -> JsonObject:
        return {
            **attributes(
                self,
                "total_records",
                "valid_openai_format",
                "invalid_format",
                "removed_quality",
                "deduplicated",
                "final_selected",
                "limit_reached",
            ),
            "workload_type": self.workload_type.value,
            "dropped_by_reason": {reason: n for reason, n in sorted(self.reasons.items())},
            "dropped_samples": {reason: [*refs] for reason, refs in sorted(self.samples.items())},
        }


def _reason_kind(reason: str) -> str:
    """The reason without record-specific details, to count alike drops together."""
    head, _, _ = reason.partition(" (got")
    return head.split(": ", 1)[-1] if head.startswith(("request", "response", "record", "tool_calls")) else head


class Curator:
    """Stateful decisions over inspected records fed newest first: workload type, text answers,
    dedup and limit. The per-record checks are pure and happen before, in :mod:`.inspect`."""

    def __init__(self, config: DataSplitSettings, display_ref: Callable[[str], str] = str) -> None:
        self.config = config
        self._display = display_ref
        self.stats = CurationStats()
        self.selected: list[Selected] = []
        self._seen: set[bytes] = set()
        self._forced = config.workload_type
        self._tool_calling = config.workload_type is WorkloadType.TOOL_CALLING
        self._pending: list[tuple[str, bytes | None]] = []
        self._labels: dict[str, str] = {}
        self._duplicate_reason = "same " + config.dedup.value.replace("_", " ")

    @property
    def full(self) -> bool:
        return len(self.selected) >= self.config.limit

    def accept(self, ref: str, item: Inspected) -> Selected | None:
        """Decide on one inspected record; its facts if it is selected."""
        if self.full:
            return None
        stats = self.stats
        stats.total_records += 1
        stats.saw(item.timestamp)
        if isinstance(item, Rejected):
            stats.drop(self._display(ref), item.stage, item.reason)
            return None
        if item.has_tool_calls:
            if not self._tool_calling and self._forced is WorkloadType.AUTO:
                self._tool_calling = True
                self._settle_pending()
        elif not self.config.keep_text_answers and self._forced is not WorkloadType.GENERIC:
            if self._tool_calling:
                stats.drop(self._display(ref), DropStage.QUALITY, "text answer in a tool-calling workload")
                return None
            # Not known yet whether this workload calls tools: decide when it is.
            selected = self._select(ref, item)
            if selected is not None:
                self._pending.append((ref, item.dedup_key))
            return selected
        return self._select(ref, item)

    def _select(self, ref: str, item: Usable) -> Selected | None:
        key = item.dedup_key
        if key is not None:
            if key in self._seen:
                self.stats.drop(self._display(ref), DropStage.DUPLICATE, self._duplicate_reason)
                return None
            self._seen.add(key)
        selected = Selected(
            ref=ref,
            timestamp=item.timestamp,
            label=self._labels.setdefault(item.label, item.label),  # one str per class
            query=item.query,
            size=len(item.body),
        )
        self.selected.append(selected)
        return selected

    def _settle_pending(self) -> None:
        """The workload turned out to call tools: drop the text answers selected while that was open."""
        if not self._pending:
            return
        drop = {ref for ref, _ in self._pending}
        self.selected = [s for s in self.selected if s.ref not in drop]
        for ref, key in self._pending:
            if key is not None:
                self._seen.discard(key)
            self.stats.drop(self._display(ref), DropStage.QUALITY, "text answer in a tool-calling workload")
        self._pending.clear()

    def finish(self) -> tuple[list[Selected], CurationStats]:
        self.stats.final_selected = len(self.selected)
        self.stats.limit_reached = self.full
        self.stats.workload_type = WorkloadType.TOOL_CALLING if self._tool_calling else WorkloadType.GENERIC
        return self.selected, self.stats


def curate_records(records: Iterable[JsonObject], config: DataSplitSettings) -> tuple[list[JsonObject], CurationStats]:
    """Curate a list of records in memory (for tests and small data): the selected records and stats."""
    curator = Curator(config)
    records = list(records)
    batch = inspect_records(records, InspectConfig.of(config))
    for i, item in enumerate(batch.records):
        if curator.full:
            break
        curator.accept(str(i), item)
    selected, stats = curator.finish()
    by_ref = {str(i): rec for i, rec in enumerate(records)}
    return [by_ref[s.ref] for s in selected], stats
