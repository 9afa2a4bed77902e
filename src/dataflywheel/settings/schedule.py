"""The settings sections of scheduled jobs and of the drift check (``schedule``, ``drift``).

Part of :class:`~dataflywheel.settings.Settings`; their descriptions are documentation like every other setting's.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from dataflywheel.settings.base import Section

__all__ = ["DriftMetric", "DriftSettings", "ScheduleSettings"]


class ScheduleSettings(Section):
    """Scheduled jobs: flywheel serve starts a workload's job on its schedule (cron, new records, drift)."""

    enabled: bool = Field(
        True, description="Run the scheduler inside flywheel serve (several servers may: each firing happens once)."
    )
    tick_s: float = Field(30.0, gt=0, le=3600, description="How often the scheduler looks at the schedules.")
    drift_check_s: float = Field(
        3600.0,
        gt=0,
        description="Schedules with on_drift: how often their drift check runs (it reads the new logs and embeds "
        "their queries).",
    )


class DriftMetric(StrEnum):
    """How the tool-class distributions of the dataset and of the new logs are compared."""

    TOTAL_VARIATION = "total_variation"
    """Half the L1 distance: the share of traffic that would have to change class (0 to 1)."""
    JENSEN_SHANNON = "jensen_shannon"
    """The Jensen-Shannon divergence in bits (0 to 1)."""


class DriftSettings(Section):
    """The drift check between the last job's dataset and the logs since (GET /api/workloads/{id}/drift)."""

    max_records: int = Field(
        2000, ge=1, le=1_000_000, description="New log records read (newest first) for the check, at most."
    )
    min_records: int = Field(
        50, ge=1, description="Fewer new records than this are too few to tell: the check reports no drift."
    )
    reference_records: int = Field(
        2000, ge=1, le=1_000_000, description="Dataset rows (eval, then train) read for the reference, at most."
    )
    tool_class_metric: DriftMetric = Field(
        DriftMetric.TOTAL_VARIATION, description="total_variation | jensen_shannon: how tool classes are compared."
    )
    tool_class_threshold: float = Field(
        0.2, gt=0, le=1, description="Tool-class distance (of tool_class_metric) from which the logs count as drifted."
    )
    schema_changes: bool = Field(
        True, description="New tools, or tools whose parameter schema changed, count as drift."
    )
    embed: bool = Field(
        True, description="Compare the centroids of the user queries' embeddings (icl.embedder); false: skip it."
    )
    centroid_threshold: float = Field(
        0.1,
        gt=0,
        le=2,
        description="Cosine distance between the query-embedding centroids from which the logs count as drifted.",
    )

    @model_validator(mode="after")
    def _enough(self) -> DriftSettings:
        if self.min_records > self.max_records:
            raise ValueError(f"min_records ({self.min_records}) cannot exceed max_records ({self.max_records})")
        return self
