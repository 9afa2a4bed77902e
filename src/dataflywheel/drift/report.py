"""The drift report: what the check compared, each signal with its threshold, and the verdict.

Pydantic models (frozen): the API answers with them, and a schedule stores its last one as their JSON.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CentroidDrift",
    "ClassShift",
    "DriftReport",
    "DriftStatus",
    "SchemaChange",
    "SchemaChangeKind",
    "ToolClassDrift",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DriftStatus(StrEnum):
    """The verdict of a drift check."""

    DRIFTED = "drifted"
    """At least one signal passed its threshold (``reasons`` says which)."""
    STABLE = "stable"
    """Every signal stayed under its threshold."""
    NO_REFERENCE = "no_reference"
    """No job of the workload built a dataset yet: nothing to compare with."""
    TOO_FEW_RECORDS = "too_few_records"
    """Fewer new records than ``drift.min_records`` since the dataset: too few to tell."""


class SchemaChangeKind(StrEnum):
    NEW = "new"
    """A tool the dataset's records never offered."""
    CHANGED = "changed"
    """A tool the dataset offered with another definition (description or parameters)."""


class ClassShift(_Frozen):
    """One tool class (the first call's function name, or ``no_tool``) on both sides."""

    tool: str
    reference_count: int
    current_count: int
    reference_share: float
    current_share: float


class ToolClassDrift(_Frozen):
    metric: str = Field(description="total_variation | jensen_shannon: the one compared with the threshold.")
    distance: float = Field(description="The value of ``metric``, 0 to 1.")
    total_variation: float
    jensen_shannon: float
    threshold: float
    drifted: bool
    shifts: tuple[ClassShift, ...] = Field(description="Every class, largest change of share first.")


class SchemaChange(_Frozen):
    tool: str
    kind: SchemaChangeKind
    records: int = Field(description="New records that offered the tool with a definition the dataset lacks.")
    schema_hashes: tuple[str, ...]
    reference_hashes: tuple[str, ...] = Field(description="The definitions the dataset offered (empty: new tool).")


class CentroidDrift(_Frozen):
    distance: float | None = Field(description="Cosine distance of the query-embedding centroids; None: skipped.")
    threshold: float
    drifted: bool
    skipped: str | None = Field(None, description="Why it was not computed (no embedder, no queries).")
    reference_queries: int = 0
    current_queries: int = 0


class DriftReport(_Frozen):
    """How far a workload's logs since its last dataset have moved from that dataset."""

    workload_id: str
    client_id: str
    status: DriftStatus
    drifted: bool
    reasons: tuple[str, ...] = Field(description="Each signal past its threshold, in words.")
    checked_at: datetime
    reference_job_id: str | None = None
    reference_build_id: str | None = None
    reference_records: int = Field(0, description="Records of the dataset (its classes) compared with.")
    since_timestamp: float | None = Field(None, description="New records are those logged after this (epoch s).")
    current_records: int = Field(0, description="New records read (at most drift.max_records).")
    tool_classes: ToolClassDrift | None = None
    schema_changes: tuple[SchemaChange, ...] = ()
    centroid: CentroidDrift | None = None
