"""The drift check: how far a workload's new logs have moved from the dataset of its last job.

Three signals (:mod:`.metrics`, pure functions): the shift of the tool-class distribution (total variation or
Jensen-Shannon divergence, with the counts per class), tools that are new or whose schema changed, and the
cosine distance between the centroids of the user queries' embeddings (optional: skipped without an embedder).
:func:`~dataflywheel.drift.check.compare` turns them into a typed :class:`~dataflywheel.drift.report.DriftReport`
against the thresholds of the ``drift`` settings; :func:`~dataflywheel.drift.check.check_drift` reads the
reference (the newest dataset build of the workload) and the logs logged after it.
"""

from __future__ import annotations

from dataflywheel.drift import report
from dataflywheel.drift.report import *  # noqa: F403 - the report's models, listed once: report.__all__

__all__ = list(report.__all__)
