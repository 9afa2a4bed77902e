"""The drift check: :func:`compare` (pure: two samples and the thresholds give a report) and
:func:`check_drift` (reads the workload's newest dataset build and the logs after it)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from dataflywheel.drift.metrics import (
    centroid_distance,
    class_shifts,
    jensen_shannon,
    schema_changes,
    total_variation,
)
from dataflywheel.drift.report import CentroidDrift, DriftReport, DriftStatus, ToolClassDrift
from dataflywheel.drift.samples import Reference, Sample, load_current, load_reference
from dataflywheel.errors import EmbeddingError
from dataflywheel.jobs.tables import utcnow
from dataflywheel.settings.schedule import DriftMetric, DriftSettings

if TYPE_CHECKING:
    from dataflywheel.jobs import JobStore
    from dataflywheel.logstore.base import LogStore
    from dataflywheel.settings import Settings

logger = logging.getLogger(__name__)

__all__ = ["EmbedFn", "check_drift", "compare"]

EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]
"""Texts to one embedding row each (an :class:`~dataflywheel.icl.embedders.Embedder`'s ``embed``)."""


def _tool_classes(reference: Sample, current: Sample, settings: DriftSettings) -> ToolClassDrift | None:
    if not sum(reference.classes.values()) or not sum(current.classes.values()):
        return None
    tv = total_variation(reference.classes, current.classes)
    js = jensen_shannon(reference.classes, current.classes)
    distance = tv if settings.tool_class_metric is DriftMetric.TOTAL_VARIATION else js
    return ToolClassDrift(
        metric=settings.tool_class_metric.value,
        distance=round(distance, 6),
        total_variation=round(tv, 6),
        jensen_shannon=round(js, 6),
        threshold=settings.tool_class_threshold,
        drifted=distance >= settings.tool_class_threshold,
        shifts=tuple(class_shifts(reference.classes, current.classes)),
    )


def _centroid(reference: Sample, current: Sample, settings: DriftSettings, embed: EmbedFn | None) -> CentroidDrift:
    counts = {"reference_queries": len(reference.queries), "current_queries": len(current.queries)}
    threshold = settings.centroid_threshold

    def skipped(why: str) -> CentroidDrift:
        return CentroidDrift(distance=None, threshold=threshold, drifted=False, skipped=why, **counts)

    if not settings.embed:
        return skipped("drift.embed is false")
    if embed is None:
        return skipped("no embedder")
    if not reference.queries or not current.queries:
        return skipped("no user queries on one side")
    try:
        distance = centroid_distance(embed(list(reference.queries)), embed(list(current.queries)))
    except (EmbeddingError, ValueError) as exc:
        logger.warning("drift check: embedding the queries failed: %s", exc)
        return skipped(f"embedding failed: {exc}")
    return CentroidDrift(
        distance=round(distance, 6), threshold=threshold, drifted=distance >= threshold, skipped=None, **counts
    )


def compare(
    workload_id: str,
    client_id: str,
    reference: Reference,
    current: Sample,
    settings: DriftSettings,
    *,
    embed: EmbedFn | None = None,
    now: datetime | None = None,
) -> DriftReport:
    """The drift report of ``current`` (the new logs) against ``reference`` under the thresholds of
    ``settings``; too few new records (``drift.min_records``) is no drift, with that status."""
    base = {
        "workload_id": workload_id,
        "client_id": client_id,
        "checked_at": now or utcnow(),
        "reference_job_id": reference.job_id,
        "reference_build_id": reference.build_id,
        "reference_records": sum(reference.sample.classes.values()),
        "since_timestamp": reference.newest_timestamp,
        "current_records": current.records,
    }
    if current.records < settings.min_records:
        reason = f"{current.records} new record(s), fewer than drift.min_records ({settings.min_records})"
        return DriftReport(status=DriftStatus.TOO_FEW_RECORDS, drifted=False, reasons=(reason,), **base)
    classes = _tool_classes(reference.sample, current, settings)
    changes = tuple(schema_changes(reference.sample.schemas, current.schemas))
    centroid = _centroid(reference.sample, current, settings, embed)
    reasons: list[str] = []
    if classes is not None and classes.drifted:
        reasons.append(f"tool classes: {classes.metric} {classes.distance:.3f} >= {classes.threshold}")
    if changes and settings.schema_changes:
        described = ", ".join(f"{c.tool} ({c.kind.value}, {c.records} records)" for c in changes)
        reasons.append(f"tool schemas: {described}")
    if centroid.drifted and centroid.distance is not None:
        reasons.append(f"query embeddings: centroid distance {centroid.distance:.3f} >= {centroid.threshold}")
    return DriftReport(
        status=DriftStatus.DRIFTED if reasons else DriftStatus.STABLE,
        drifted=bool(reasons),
        reasons=tuple(reasons),
        tool_classes=classes,
        schema_changes=changes,
        centroid=centroid,
        **base,
    )


def _default_embed(settings: Settings) -> EmbedFn | None:
    """The embedder of ``icl.embedder``, or None (with a warning) when it cannot be made here."""
    from dataflywheel.errors import DependencyMissingError

    try:
        from dataflywheel.icl.embedders import make_embedder

        return make_embedder(settings.icl.embedder).embed
    except (DependencyMissingError, EmbeddingError, ImportError) as exc:
        logger.warning("drift check without query embeddings: %s", exc)
        return None


def check_drift(
    store: JobStore,
    logs: LogStore,
    settings: Settings,
    workload_id: str,
    client_id: str,
    *,
    embed: EmbedFn | bool | None = True,
    now: datetime | None = None,
) -> DriftReport:
    """Compare the workload's newest dataset build with the records logged after it. ``embed``: a function,
    True for the ``icl.embedder`` of the settings (made only when needed), False/None for none."""
    cfg = settings.drift
    dataset = store.latest_dataset(workload_id, client_id)
    if dataset is None:
        return DriftReport(
            workload_id=workload_id,
            client_id=client_id,
            status=DriftStatus.NO_REFERENCE,
            drifted=False,
            reasons=("no job of this workload built a dataset yet",),
            checked_at=now or utcnow(),
        )
    reference = load_reference(dataset, cfg.reference_records)
    current = load_current(logs, workload_id, client_id, reference.newest_timestamp, cfg.max_records)
    embed_fn: EmbedFn | None
    if embed is True:
        embed_fn = _default_embed(settings) if cfg.embed and current.records >= cfg.min_records else None
    else:
        embed_fn = embed or None
    return compare(workload_id, client_id, reference, current, cfg, embed=embed_fn, now=now)
