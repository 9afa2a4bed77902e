"""Aggregates with uncertainty: mean, percentile-bootstrap 95% interval and the sample count; and the
nearest-rank quantile that latency percentiles use."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


class AggregateDict(TypedDict):
    """An :class:`Aggregate` as stored (``summary.json``)."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


@dataclass(frozen=True)
class Aggregate:
    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    """Samples the metric was defined for (undefined samples, None, are left out)."""

    def to_dict(self) -> AggregateDict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}

    def __str__(self) -> str:
        if self.mean is None:
            return f"- (n={self.n})"
        return f"{self.mean:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] (n={self.n})"


def aggregate(values: Iterable[float | None], confidence: float = 0.95, seed: int = BOOTSTRAP_SEED) -> Aggregate:
    """Mean of the defined values with a percentile-bootstrap interval (seeded: reproducible).

    One value gives a zero-width interval at that value; no value gives ``Aggregate(None, None, None, 0)``.
    """
    data = np.asarray([v for v in values if v is not None], dtype=np.float64)
    n = int(data.size)
    if n == 0:
        return Aggregate(None, None, None, 0)
    mean = float(data.mean())
    if n == 1 or float(data.min()) == float(data.max()):
        return Aggregate(mean, mean, mean, n)
    rng = np.random.default_rng(seed)
    means = _bootstrap_means(data, rng)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Aggregate(mean, float(low), float(high), n)


def _bootstrap_means(data: np.ndarray, rng: np.random.Generator, chunk: int = 500) -> np.ndarray:
    # Resampled indices in chunks keep memory at chunk x n even for large evals.
    out: list[np.ndarray] = []
    left = BOOTSTRAP_RESAMPLES
    while left:
        k = min(chunk, left)
        idx = rng.integers(0, data.size, size=(k, data.size))
        out.append(data[idx].mean(axis=1))
        left -= k
    return np.concatenate(out)


def aggregate_all(rows: Sequence[dict[str, float | None]], metrics: Sequence[str]) -> dict[str, Aggregate]:
    """Aggregate every metric over per-sample score dicts."""
    return {m: aggregate(r.get(m) for r in rows) for m in metrics}


def quantile(sorted_values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of ascending values (the value at index ``int(q * n)``, clamped);
    None for no value. Used for latency p50/p95, so every report of a latency agrees."""
    values = list(sorted_values)
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]
