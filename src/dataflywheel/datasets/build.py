"""Build one workload's datasets: curate, split, select ICL examples, write a versioned folder.

The stages, in order (each timed and reported in the manifest):

1. **scan** (:mod:`.scan`): read the source newest first; inspect each record
   (:mod:`dataflywheel.curation.inspect`) and decide what to keep (:mod:`dataflywheel.curation.curate`),
   keeping compact facts and the serialized training row (:mod:`.rows`). Stops at ``data_split.limit``.
2. **split**: stratified eval / train / val over the selected records (:mod:`dataflywheel.curation.split`).
3. **icl**: fetch the eval records, pick examples from the train records and inject them
   (:mod:`dataflywheel.icl.selection`).
4. **write**: the training rows kept in the scan go to train.jsonl / val.jsonl (:mod:`.artifacts`).

The source is read once, plus a fetch of the eval records and of the few ICL example candidates. Memory
holds compact facts and training rows with their shared parts stored once (bounded, spilling to disk past
its budget), never every parsed record.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataflywheel.curation.curate import CurationStats, Curator, Selected
from dataflywheel.curation.inspect import NONE, InspectConfig, Usable
from dataflywheel.curation.split import SplitPlan, split_indices
from dataflywheel.datasets.artifacts import DatasetWriter
from dataflywheel.datasets.rows import RowBuffer
from dataflywheel.datasets.scan import default_workers, scan_batches
from dataflywheel.datasets.sources import RecordSource
from dataflywheel.errors import InsufficientRecordsError
from dataflywheel.icl import selection as icl_mod
from dataflywheel.icl.tokens import load_token_counter
from dataflywheel.progress import Progress, ProgressFn, ignore_progress
from dataflywheel.records.jsonvalue import JsonObject, JsonValue
from dataflywheel.records.model import record_id
from dataflywheel.settings import DataSplitSettings, ICLSettings, Settings

_PROGRESS_EVERY = 2000


@dataclass
class DatasetBuild:
    """The result of a build: where it is and what it holds."""

    path: Path
    manifest: JsonObject
    stats: CurationStats
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        counts = self.manifest.get("counts")
        return {k: v for k, v in counts.items() if isinstance(v, int)} if isinstance(counts, dict) else {}


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def build_datasets(
    source: RecordSource,
    settings: Settings,
    *,
    workload_id: str,
    client_id: str,
    data_split: DataSplitSettings | None = None,
    icl: ICLSettings | None = None,
    progress: ProgressFn | None = None,
    token_counter: Any = None,
    embedder_factory: Callable[[], Any] | None = None,
) -> DatasetBuild:
    """Run every curation stage over ``source`` and publish a dataset folder under ``settings.home``.

    ``data_split``/``icl`` override the settings' sections for this build (a job's overrides). Raises
    :class:`InsufficientRecordsError` when fewer than ``min_total_records`` usable records remain; a failed
    build leaves no folder behind.
    """
    build = _Build(
        source,
        settings,
        workload_id,
        client_id,
        data_split or settings.data_split,
        icl or settings.icl,
        progress or ignore_progress,
    )
    try:
        build.scan()
        build.split()
        build.write_eval_and_icl(token_counter, embedder_factory)
        build.write_training()
        return build.publish()
    finally:
        build.close()


class _Build:
    """The state one build carries from stage to stage."""

    def __init__(
        self,
        source: RecordSource,
        settings: Settings,
        workload_id: str,
        client_id: str,
        split_cfg: DataSplitSettings,
        icl_cfg: ICLSettings,
        progress: ProgressFn,
    ) -> None:
        self.source, self.workload_id, self.client_id = source, workload_id, client_id
        self.split_cfg, self.icl_cfg, self.progress = split_cfg, icl_cfg, progress
        self.timer = _Timer()
        self.started = time.perf_counter()
        self.curator = Curator(split_cfg, display_ref=source.display_ref)
        self.writer = DatasetWriter(settings.datasets_dir, workload_id, client_id)
        self.rows = RowBuffer(self.writer.partial)
        self.workers = default_workers() if settings.curation_workers is None else settings.curation_workers
        self.selected: list[Selected] = []
        self.plan = SplitPlan([], [], [])
        self.seed = 0
        self.icl_report: icl_mod.ICLReport | None = None

    @property
    def stats(self) -> CurationStats:
        return self.curator.stats

    def report(self, stage: str, done: int, total: int | None) -> None:
        """A :class:`~dataflywheel.progress.Progress` of ``stage`` in records (``total`` None: unknown yet)."""
        elapsed = time.perf_counter() - self.started
        self.progress(Progress(stage=stage, done=done, total=total, unit="records", elapsed_s=elapsed))

    def scan(self) -> None:
        """Stage 1: inspect every record (in worker processes for large sources) and decide which to keep,
        keeping the serialized training row of each selected one."""
        curator, rows = self.curator, self.rows
        config = InspectConfig.of(self.split_cfg)
        n = 0
        with self.timer.stage("scan"):
            batches = scan_batches(self.source, config, self.workers)
            try:
                for refs, batch in batches:
                    ids = [rows.intern(part) for part in batch.shared]
                    for ref, item in zip(refs, batch.records, strict=True):
                        chosen = curator.accept(ref, item)
                        if chosen is not None:
                            assert isinstance(item, Usable)
                            chosen.row = rows.append(
                                ids[item.system] if item.system != NONE else NONE,
                                item.body,
                                ids[item.tools] if item.tools != NONE else NONE,
                            )
                    n += len(refs)
                    if n % _PROGRESS_EVERY < len(refs):
                        self.report("scan", n, None)
                    if curator.full:
                        break
            finally:
                batches.close()
        self.selected, stats = curator.finish()
        self.report("scan", stats.total_records, stats.total_records)
        if len(self.selected) < self.split_cfg.min_total_records:
            raise InsufficientRecordsError(
                f"workload {self.workload_id!r} of client {self.client_id!r}: {len(self.selected)} usable "
                f"records, data_split.min_total_records is {self.split_cfg.min_total_records} (read "
                f"{stats.total_records}; invalid format {stats.invalid_format}, removed by quality filters "
                f"{stats.removed_quality}, duplicates {stats.deduplicated})"
            )

    def split(self) -> None:
        """Stage 2: stratified eval / train / val."""
        cfg = self.split_cfg
        self.seed = cfg.random_seed if cfg.random_seed is not None else secrets.randbelow(2**31)
        with self.timer.stage("split"):
            labels = [s.label for s in self.selected]
            self.plan = split_indices(labels, cfg.eval_size, cfg.val_ratio, self.seed)

    def write_eval_and_icl(self, token_counter: Any, embedder_factory: Callable[[], Any] | None) -> None:
        """Stage 3: fetch and write the eval records, then their ICL versions."""
        selected, plan = self.selected, self.plan
        eval_refs = [selected[i].ref for i in plan.eval]
        with self.timer.stage("write"):
            eval_records = self.source.fetch(eval_refs)
            eval_rows: list[tuple[str, JsonObject]] = []
            for ref in eval_refs:
                row = _eval_row(eval_records[ref])
                eval_rows.append((str(row["record_id"]), row))
                self.writer.write("eval.jsonl", row)
        self.report("eval", len(eval_rows), len(eval_rows))
        with self.timer.stage("icl"):
            pool = [
                icl_mod.PoolItem(
                    record_id=selected[i].ref, tool=selected[i].label, size=selected[i].size, query=selected[i].query
                )
                for i in plan.train
            ]
            icl_records, icl_report = icl_mod.build_icl_records(
                eval_rows,
                pool,
                self.source.fetch,
                settings=self.icl_cfg,
                workload_type=self.stats.workload_type,
                counter=token_counter or load_token_counter(self.icl_cfg.tokenizer),
                embedder_factory=embedder_factory or _default_embedder(self.icl_cfg),
            )
        self.icl_report = icl_report
        with self.timer.stage("write"):
            for row in icl_records:
                self.writer.write("icl.jsonl", row)
        self.report("icl", len(icl_records), len(icl_records))

    def write_training(self) -> None:
        """Stage 4: the training rows serialized in the scan go to train.jsonl or val.jsonl."""
        with self.timer.stage("write"):
            for name, indices in (("train.jsonl", self.plan.train), ("val.jsonl", self.plan.val)):
                stage = name.removesuffix(".jsonl")
                for n, i in enumerate(indices, start=1):
                    self.writer.write_bytes(name, self.rows.get(self.selected[i].row))
                    if n % _PROGRESS_EVERY == 0:
                        self.report(stage, n, len(indices))
                self.report(stage, len(indices), len(indices))
            self.writer.close_files()

    def publish(self) -> DatasetBuild:
        self.timer.seconds["total"] = time.perf_counter() - self.started
        manifest = _manifest(self)
        path = self.writer.publish(manifest)
        return DatasetBuild(
            path=path, manifest=self.writer.manifest, stats=self.stats, timings=dict(self.timer.seconds)
        )

    def close(self) -> None:
        self.rows.close()
        if self.writer.path is None:
            self.writer.abort()


def _default_embedder(icl_cfg: ICLSettings) -> Callable[[], Any]:
    def make() -> Any:
        from dataflywheel.icl.embedders import make_embedder

        return make_embedder(icl_cfg.embedder)

    return make


def _eval_row(record: JsonObject) -> JsonObject:
    """An eval row is the whole (normalized) log record plus its ``record_id``."""
    return {"record_id": record_id(record), **{k: v for k, v in record.items() if k != "record_id"}}


def _class_counts(selected: Sequence[Selected], indices: Sequence[int]) -> JsonObject:
    return {label: n for label, n in sorted(Counter(selected[i].label for i in indices).items())}


def _manifest(build: _Build) -> JsonObject:
    selected, plan, stats = build.selected, build.plan, build.stats
    everything = range(len(selected))
    icl = build.icl_report
    warnings: list[JsonValue] = [*plan.warnings, *(icl.warnings if icl is not None else [])]
    return {
        "workload_id": build.workload_id,
        "client_id": build.client_id,
        "workload_type": stats.workload_type.value,
        "source": build.source.describe(),
        "seed": build.seed,
        "settings": {
            "data_split": build.split_cfg.model_dump(mode="json"),
            "icl": build.icl_cfg.model_dump(mode="json"),
        },
        "counts": {
            "selected": len(selected),
            "eval": len(plan.eval),
            "icl": len(plan.eval),
            "train": len(plan.train),
            "val": len(plan.val),
        },
        "classes": {
            "all": _class_counts(selected, everything),
            "eval": _class_counts(selected, plan.eval),
            "train": _class_counts(selected, plan.train),
            "val": _class_counts(selected, plan.val),
        },
        "time_range": {
            "newest": max((s.timestamp for s in selected), default=None),
            "oldest": min((s.timestamp for s in selected), default=None),
        },
        # Every well-formed record read (newest first, until the limit stopped the read), for the traffic rate.
        "traffic": stats.traffic(),
        "curation": stats.to_dict(),
        "training_rows": {"in_memory_bytes": build.rows.memory_bytes, "spilled_bytes": build.rows.spilled_bytes},
        "icl": icl.to_dict() if icl is not None else {},
        "warnings": warnings,
        "timings_s": {k: round(v, 4) for k, v in sorted(build.timer.seconds.items())},
    }
