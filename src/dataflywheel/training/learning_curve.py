"""The learning curve of a job (optional): the candidate also trained on fractions of the train split, each
adapter scored on the same eval set, so the result says whether more logged records would still help.

A job asks for it with ``learning_curve`` (fractions strictly between 0 and 1, e.g. ``[0.25, 0.5]``; the
job's own LoRA run is the 100% point). Each fraction's train rows are a stratified subset of the split's:
every class keeps ``ceil(fraction x n_c)`` of its rows (at least one), the first ones in the split's own
(already shuffled) order, so a smaller fraction's rows are a subset of a larger one's and the class mix is the
split's. Validation rows are the split's, unchanged. A class is read from a row's structure only
(:func:`~dataflywheel.training.balance.row_class`).
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from dataflywheel.errors import ConfigError
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.training.balance import row_class
from dataflywheel.training.examples import read_rows

__all__ = ["MAX_POINTS", "CurvePoint", "parse_fractions", "percent", "stratified_subset", "trend", "write_subset"]

MAX_POINTS = 4
"""Most fractions a job may ask for (each is a LoRA run and an eval more)."""

RISING = 0.02
"""The metric gained more than this from the previous point to the full train split: still rising."""


def parse_fractions(value: Any, setting: str = "learning_curve") -> tuple[float, ...]:
    """The fractions of a job's ``learning_curve``, sorted; a ConfigError naming ``setting`` otherwise."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or isinstance(value, str | bytes):
        raise ConfigError(f"{setting}: expected a list of fractions between 0 and 1, e.g. [0.25, 0.5]")
    fractions = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float) or not 0 < float(item) < 1:
            raise ConfigError(f"{setting}: {item!r} is not a fraction strictly between 0 and 1")
        fractions.append(float(item))
    if len(set(fractions)) != len(fractions):
        raise ConfigError(f"{setting}: fractions repeat")
    if len(fractions) > MAX_POINTS:
        raise ConfigError(f"{setting}: at most {MAX_POINTS} fractions (got {len(fractions)})")
    return tuple(sorted(fractions))


def percent(fraction: float) -> str:
    """``0.25`` -> ``25`` (a folder / run id suffix)."""
    return f"{fraction * 100:g}".replace(".", "_")


def stratified_subset(rows: Sequence[Mapping[str, Any]], fraction: float) -> list[int]:
    """Indices (ascending) of the rows kept at ``fraction``: per class the first ``ceil(fraction x n_c)``."""
    sizes = Counter(row_class(r) for r in rows)
    quota = {label: max(1, math.ceil(fraction * n)) for label, n in sizes.items()}
    taken: Counter[str] = Counter()
    kept = []
    for i, row in enumerate(rows):
        label = row_class(row)
        if taken[label] < quota[label]:
            taken[label] += 1
            kept.append(i)
    return kept


def write_subset(dataset_dir: Path, fraction: float, out_dir: Path) -> int:
    """A dataset folder at ``out_dir`` with ``fraction`` of ``dataset_dir``'s train rows (stratified), its
    validation rows and manifest; returns the train rows written."""
    rows = read_rows(dataset_dir / "train.jsonl")
    kept = stratified_subset(rows, fraction)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "train.jsonl.partial"
    tmp.write_bytes(b"".join(orjson.dumps(rows[i]) + b"\n" for i in kept))
    tmp.replace(out_dir / "train.jsonl")
    for name in ("val.jsonl", "manifest.json"):
        if (dataset_dir / name).is_file():
            shutil.copyfile(dataset_dir / name, out_dir / name)
    return len(kept)


@dataclass(frozen=True)
class CurvePoint:
    """One point: the share of the train split, its rows, and the eval's metrics (``metric -> aggregate``)."""

    fraction: float
    train_examples: int
    metrics: Mapping[str, Any]

    def mean(self, metric: str) -> float | None:
        value = (self.metrics.get(metric) or {}).get("mean")
        return None if value is None else float(value)

    def to_dict(self) -> JsonObject:
        return {"fraction": self.fraction, "train_examples": self.train_examples, "metrics": dict(self.metrics)}

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> CurvePoint:
        return cls(float(data["fraction"]), int(data.get("train_examples") or 0), data.get("metrics") or {})


def trend(points: Sequence[CurvePoint], metric: str) -> str | None:
    """``rising`` when the last point (the full split) beats the one before by more than :data:`RISING`,
    ``flat`` otherwise; None with fewer than two measured points."""
    measured = [(p.fraction, m) for p in sorted(points, key=lambda p: p.fraction) if (m := p.mean(metric)) is not None]
    if len(measured) < 2:
        return None
    return "rising" if measured[-1][1] - measured[-2][1] > RISING else "flat"
