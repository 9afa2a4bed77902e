"""The drift metrics, as pure functions of counts, tool lists and vectors."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from dataflywheel.drift.report import ClassShift, SchemaChange, SchemaChangeKind

__all__ = [
    "centroid_distance",
    "class_shifts",
    "jensen_shannon",
    "schema_changes",
    "tool_fingerprints",
    "total_variation",
]


def _shares(counts: Mapping[str, int], classes: Iterable[str]) -> list[float]:
    total = sum(counts.values())
    return [counts.get(c, 0) / total if total else 0.0 for c in classes]


def _check(counts: Mapping[str, int], name: str) -> None:
    negative = [c for c, n in counts.items() if n < 0]
    if negative:
        raise ValueError(f"{name}: negative count for class {negative[0]!r}")
    if not sum(counts.values()):
        raise ValueError(f"{name}: no records (every count is 0)")


def total_variation(reference: Mapping[str, int], current: Mapping[str, int]) -> float:
    """Half the L1 distance between the two class distributions (from counts): the share of traffic that
    would have to change class to turn one into the other; 0 (the same shares) to 1 (no class in common)."""
    _check(reference, "reference")
    _check(current, "current")
    classes = sorted(set(reference) | set(current))
    p, q = _shares(reference, classes), _shares(current, classes)
    return min(1.0, 0.5 * sum(abs(a - b) for a, b in zip(p, q, strict=True)))


def jensen_shannon(reference: Mapping[str, int], current: Mapping[str, int]) -> float:
    """The Jensen-Shannon divergence of the two class distributions (from counts), in bits: 0 to 1."""
    _check(reference, "reference")
    _check(current, "current")
    classes = sorted(set(reference) | set(current))
    p, q = _shares(reference, classes), _shares(current, classes)
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(a * math.log2(a / b) for a, b in zip(x, m, strict=True) if a > 0)

    return min(1.0, max(0.0, 0.5 * kl(p) + 0.5 * kl(q)))


def class_shifts(reference: Mapping[str, int], current: Mapping[str, int]) -> list[ClassShift]:
    """Each class of either side with its counts and shares, largest change of share first."""
    ref_total, cur_total = sum(reference.values()), sum(current.values())
    shifts = [
        ClassShift(
            tool=c,
            reference_count=reference.get(c, 0),
            current_count=current.get(c, 0),
            reference_share=reference.get(c, 0) / ref_total if ref_total else 0.0,
            current_share=current.get(c, 0) / cur_total if cur_total else 0.0,
        )
        for c in set(reference) | set(current)
    ]
    return sorted(shifts, key=lambda s: (-abs(s.current_share - s.reference_share), s.tool))


def tool_fingerprints(tools: Any) -> dict[str, str]:
    """``{name: hash}`` of an OpenAI ``tools`` list: the hash (sha256, 16 hex digits) of the function's
    definition (description and parameters) in canonical JSON, so any change of its schema changes it.
    Entries without a function name are left out."""
    out: dict[str, str] = {}
    if not isinstance(tools, list):
        return out
    for tool in tools:
        fn = tool.get("function", tool) if isinstance(tool, dict) else None
        name = fn.get("name") if isinstance(fn, dict) else None
        if not isinstance(name, str) or not name:
            continue
        assert isinstance(fn, dict)
        definition = {"description": fn.get("description"), "parameters": fn.get("parameters")}
        out[name] = hashlib.sha256(orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    return out


def schema_changes(
    reference: Mapping[str, Mapping[str, int]], current: Mapping[str, Mapping[str, int]]
) -> list[SchemaChange]:
    """The tools of the new logs that the dataset lacks (``new``) or offered with another schema
    (``changed``). Both sides are ``{tool name: {schema hash: records offering it}}``."""
    changes = []
    for name in sorted(current):
        known = reference.get(name)
        unseen = {h: n for h, n in current[name].items() if not known or h not in known}
        if not unseen:
            continue
        changes.append(
            SchemaChange(
                tool=name,
                kind=SchemaChangeKind.NEW if not known else SchemaChangeKind.CHANGED,
                records=sum(unseen.values()),
                schema_hashes=tuple(sorted(unseen)),
                reference_hashes=tuple(sorted(known or ())),
            )
        )
    return changes


def centroid_distance(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """The cosine distance (0 to 2) between the mean vectors of two sets of embeddings (one row each)."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(current, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or not len(a) or not len(b):
        raise ValueError("centroid_distance needs two non-empty 2-d arrays of vectors")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"vectors of different sizes: {a.shape[1]} and {b.shape[1]}")
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    na, nb = float(np.linalg.norm(ca)), float(np.linalg.norm(cb))
    if na == 0.0 or nb == 0.0:
        raise ValueError("a centroid is the zero vector: its direction is undefined")
    cosine = float(ca @ cb) / (na * nb)
    return float(min(2.0, max(0.0, 1.0 - cosine)))


def counts_of(labels: Sequence[str]) -> dict[str, int]:
    """``{label: occurrences}``."""
    out: dict[str, int] = {}
    for label in labels:
        out[label] = out.get(label, 0) + 1
    return out
