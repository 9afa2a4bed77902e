"""Build one workload's datasets: curate, split, select ICL examples, write a versioned folder.

The stages, in order (each timed and reported in the manifest):

1. **scan**: stream the source newest first; decode each record and curate it (:mod:`.curate`), keeping
   compact facts only. Stops once ``data_split.limit`` records are selected.
2. **split**: stratified eval / train / val over the selected records (:mod:`.split`).
3. **icl**: fetch the eval records, pick examples from the train records and inject them (:mod:`.icl`).
4. **write**: fetch train/val records in batches and write training rows (:mod:`.training_format`).

Memory is bounded by the facts of the selected records plus one batch, not by the data.
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

import orjson

from dataflywheel.curation.artifacts import DatasetWriter
from dataflywheel.curation.curate import CurationStats, Curator, Selected
from dataflywheel.curation.sources import RecordSource, decode
from dataflywheel.curation.split import SplitPlan, split_indices
from dataflywheel.curation.training_format import to_training_row
from dataflywheel.curation.workload import WorkloadType
from dataflywheel.errors import InsufficientRecordsError
from dataflywheel.records.model import record_id
from dataflywheel.settings import DataSplitSettings, ICLSettings, Settings

ProgressFn = Callable[[str, int, int | None], None]
"""Called as ``progress(stage, done, total)``; total is None while unknown."""

_FETCH_BATCH = 1000
_PROGRESS_EVERY = 2000


@dataclass
class DatasetBuild:
    """The result of a build: where it is and what it holds."""

    path: Path
    manifest: dict[str, Any]
    stats: CurationStats
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.manifest["counts"].items()}


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


def _noop(stage: str, done: int, total: int | None) -> None:
    return None


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
    :class:`InsufficientRecordsError` when fewer than ``min_total_records`` usable records remain.
    """
    from dataflywheel.curation import icl as icl_mod
    from dataflywheel.curation.tokens import load_token_counter

    split_cfg = data_split or settings.data_split
    icl_cfg = icl or settings.icl
    report = progress or _noop
    timer = _Timer()
    started = time.perf_counter()

    # 1. scan ------------------------------------------------------------------------------------------
    curator = Curator(split_cfg, display_ref=source.display_ref)
    parse_s = 0.0
    with timer.stage("scan"):
        for n, (ref, raw) in enumerate(source.scan(), start=1):
            t0 = time.perf_counter()
            try:
                record: Any = decode(raw)
            except orjson.JSONDecodeError as exc:
                record = None
                curator.stats.total_records += 1
                curator.stats.invalid_format += 1
                curator.stats.drop(source.display_ref(ref), "invalid_format", f"not valid JSON: {exc.msg}")
            parse_s += time.perf_counter() - t0
            if record is not None:
                curator.feed(ref, record)
            if n % _PROGRESS_EVERY == 0:
                report("scan", n, None)
            if curator.full:
                break
    selected, stats = curator.finish()
    timer.seconds["parse"] = parse_s
    report("scan", stats.total_records, stats.total_records)
    if len(selected) < split_cfg.min_total_records:
        raise InsufficientRecordsError(
            f"workload {workload_id!r} of client {client_id!r}: {len(selected)} usable records, "
            f"data_split.min_total_records is {split_cfg.min_total_records} (read {stats.total_records}; "
            f"invalid format {stats.invalid_format}, removed by quality filters {stats.removed_quality}, "
            f"duplicates {stats.deduplicated})"
        )

    # 2. split -----------------------------------------------------------------------------------------
    seed = split_cfg.random_seed if split_cfg.random_seed is not None else secrets.randbelow(2**31)
    with timer.stage("split"):
        labels = [s.label for s in selected]
        plan = split_indices(labels, split_cfg.eval_size, split_cfg.val_ratio, seed)
    workload_type = stats.workload_type

    writer = DatasetWriter(settings.datasets_dir, workload_id, client_id)
    with writer:
        # 3. eval + icl --------------------------------------------------------------------------------
        eval_refs = [selected[i].ref for i in plan.eval]
        with timer.stage("write"):
            eval_records = source.fetch(eval_refs)
            eval_rows: list[tuple[str, dict[str, Any]]] = []
            for ref in eval_refs:
                row = _eval_row(eval_records[ref])
                eval_rows.append((row["record_id"], row))
                writer.write("eval.jsonl", row)
        report("eval", len(eval_rows), len(eval_rows))
        with timer.stage("icl"):
            pool = [
                icl_mod.PoolItem(
                    record_id=selected[i].ref, tool=selected[i].label, size=selected[i].size, query=selected[i].query
                )
                for i in plan.train
            ]
            counter = token_counter or load_token_counter(icl_cfg.tokenizer)
            icl_records, icl_report = icl_mod.build_icl_records(
                eval_rows,
                pool,
                source.fetch,
                settings=icl_cfg,
                workload_type=workload_type,
                counter=counter,
                embedder_factory=embedder_factory or _default_embedder(icl_cfg),
            )
        with timer.stage("write"):
            for row in icl_records:
                writer.write("icl.jsonl", row)
        report("icl", len(icl_records), len(icl_records))

        # 4. train + val -------------------------------------------------------------------------------
        with timer.stage("write"):
            _write_training(writer, source, selected, plan, workload_type, report)

        elapsed = time.perf_counter() - started
        timer.seconds["total"] = elapsed
        manifest = _manifest(
            source,
            workload_id,
            client_id,
            split_cfg,
            icl_cfg,
            seed,
            selected,
            plan,
            stats,
            icl_report.to_dict(),
            timer.seconds,
        )
        path = writer.publish(manifest)
    return DatasetBuild(path=path, manifest=writer.manifest, stats=stats, timings=dict(timer.seconds))


def _default_embedder(icl_cfg: ICLSettings) -> Callable[[], Any]:
    def make() -> Any:
        from dataflywheel.curation.embedders import make_embedder

        return make_embedder(icl_cfg.embedder)

    return make


def _eval_row(record: dict[str, Any]) -> dict[str, Any]:
    """An eval row is the whole (normalized) log record plus its ``record_id``."""
    return {"record_id": record_id(record), **{k: v for k, v in record.items() if k != "record_id"}}


def _write_training(
    writer: DatasetWriter,
    source: RecordSource,
    selected: Sequence[Selected],
    plan: SplitPlan,
    workload_type: WorkloadType,
    report: ProgressFn,
) -> None:
    target = {i: "train.jsonl" for i in plan.train} | {i: "val.jsonl" for i in plan.val}
    order = sorted(target)
    total = len(order)
    for start in range(0, total, _FETCH_BATCH):
        chunk = order[start : start + _FETCH_BATCH]
        records = source.fetch([selected[i].ref for i in chunk])
        for i in chunk:
            writer.write(target[i], to_training_row(records[selected[i].ref], workload_type))
        report("train", min(start + _FETCH_BATCH, total), total)


def _class_counts(selected: Sequence[Selected], indices: Sequence[int]) -> dict[str, int]:
    return dict(sorted(Counter(selected[i].label for i in indices).items()))


def _manifest(
    source: RecordSource,
    workload_id: str,
    client_id: str,
    split_cfg: DataSplitSettings,
    icl_cfg: ICLSettings,
    seed: int,
    selected: Sequence[Selected],
    plan: SplitPlan,
    stats: CurationStats,
    icl_report: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    everything = range(len(selected))
    warnings = list(plan.warnings) + list(icl_report.get("warnings", []))
    return {
        "workload_id": workload_id,
        "client_id": client_id,
        "workload_type": stats.workload_type.value,
        "source": source.describe(),
        "seed": seed,
        "settings": {
            "data_split": split_cfg.model_dump(mode="json"),
            "icl": icl_cfg.model_dump(mode="json"),
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
        "curation": stats.to_dict(),
        "icl": icl_report,
        "warnings": warnings,
        "timings_s": {k: round(v, 4) for k, v in sorted(timings.items())},
    }
