"""The curation funnel of a job's dataset build: how many logged records were read, how many each curation
step kept (and why it dropped the others), and how the kept ones were split.

Built from the build's ``manifest.json`` (:mod:`dataflywheel.datasets.build`: ``curation`` is the
:class:`~dataflywheel.curation.curate.CurationStats`, ``counts`` and ``classes`` the split) by the pure
:func:`funnel_of`; :func:`read_funnel` reads the manifest of a job's datasets stage output.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from dataflywheel.curation.inspect import DropStage
from dataflywheel.datasets.artifacts import MANIFEST

__all__ = ["CurationFunnel", "FunnelStep", "funnel_of", "read_funnel"]


class FunnelStep(BaseModel):
    """One step of curation: the records left after it, and those it dropped by reason."""

    label: str
    count: int
    dropped: int = 0
    reasons: dict[str, int] = Field(default_factory=dict, description="Dropped records per reason.")


class CurationFunnel(BaseModel):
    steps: list[FunnelStep]
    split: dict[str, int] = Field(description="Records per dataset: eval, train, val.")
    classes: dict[str, int] = Field(default_factory=dict, description="Selected records per reference class.")
    limit_reached: bool = False
    workload_type: str | None = None


# Each curation step: its label, its count in CurationStats, its stage in the drop reasons ("<stage>: <reason>").
_STEPS = (
    ("valid OpenAI format", "invalid_format", DropStage.INVALID_FORMAT),
    ("passed the quality filters", "removed_quality", DropStage.QUALITY),
    ("unique", "deduplicated", DropStage.DUPLICATE),
)


def funnel_of(manifest: Mapping[str, Any]) -> CurationFunnel | None:
    """The funnel a dataset manifest describes (None when it has no curation stats)."""
    stats = manifest.get("curation")
    if not isinstance(stats, Mapping) or "total_records" not in stats:
        return None
    reasons: Mapping[str, int] = stats.get("dropped_by_reason") or {}
    left = int(stats["total_records"])
    steps = [FunnelStep(label="read from the log store", count=left)]
    for label, counter, stage in _STEPS:
        dropped = int(stats.get(counter) or 0)
        left -= dropped
        steps.append(
            FunnelStep(
                label=label,
                count=left,
                dropped=dropped,
                reasons={k.partition(": ")[2] or k: int(v) for k, v in reasons.items() if k.startswith(stage + ":")},
            )
        )
    selected = int(stats.get("final_selected") or 0)
    if selected != left:  # records taken back after the fact (a workload found to call tools late)
        steps.append(FunnelStep(label="selected", count=selected, dropped=max(left - selected, 0)))
    counts = manifest.get("counts") or {}
    classes = (manifest.get("classes") or {}).get("all") or {}
    return CurationFunnel(
        steps=steps,
        split={name: int(counts.get(name) or 0) for name in ("eval", "train", "val")},
        classes={str(k): int(v) for k, v in classes.items()},
        limit_reached=bool(stats.get("limit_reached")),
        workload_type=stats.get("workload_type"),
    )


def read_funnel(build_path: str | Path | None) -> CurationFunnel | None:
    """The funnel of the dataset build at ``build_path`` (None when there is none, or its manifest is gone
    or unreadable: the page says so instead of failing)."""
    if not build_path:
        return None
    try:
        manifest = orjson.loads((Path(build_path) / MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return funnel_of(manifest) if isinstance(manifest, dict) else None
