"""Class balance for training: which example each step draws, so that rare classes are not drowned out.

A routing workload's classes are uneven (a tool called for 5% of the traffic next to one called for 40%),
and a small model trained on the logged mix learns to answer with the common tools. :func:`epoch_order`
draws one epoch's examples with each class's share tempered towards equal: class ``c`` with ``n_c`` examples
gets ``n_c ** (1 - power)`` parts of the epoch (``power`` 0: the logged mix; 0.5: square-root balance; 1:
every class equally often). An epoch keeps its length (the cost of a step does not change); a class whose
share exceeds its examples cycles through them (each seen once before any repeats), a larger class gets a
different subset each epoch.

The class of a row is read from its structure only: the name of the first tool the answer calls, or
``no_tool`` for a text answer, the same labels as the split's (:mod:`dataflywheel.curation.workload`).
Nothing here looks at what a tool is called.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from dataflywheel.records.chat import label_of_calls

__all__ = ["class_counts", "class_quotas", "epoch_order", "epoch_rng", "row_class"]


def row_class(row: Mapping[str, Any]) -> str:
    """The class of a training row ``{"messages": [..., answer]}``: its answer's first tool, or ``no_tool``
    (the split's own labelling, :func:`~dataflywheel.curation.workload.label_of_calls`)."""
    messages = row.get("messages") or []
    answer = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
    calls = answer.get("tool_calls")
    return label_of_calls(calls if isinstance(calls, list) else [])


def epoch_rng(seed: int, epoch: int) -> random.Random:
    """The random source of one epoch's draws (the trainer's plain shuffle uses the same)."""
    return random.Random(seed * 1_000_003 + epoch)


def class_counts(labels: Sequence[str]) -> dict[str, int]:
    return dict(sorted(Counter(labels).items()))


def class_quotas(counts: Mapping[str, int], total: int, power: float) -> dict[str, int]:
    """Draws per class in an epoch of ``total`` draws: proportional to ``count ** (1 - power)``, rounded by
    largest remainder (ties by the order of ``counts``, never by a class's name); every present class gets
    one."""
    present = {c: n for c, n in counts.items() if n > 0}
    if not present or total <= 0:
        return {}
    weights = {c: n ** (1.0 - power) for c, n in present.items()}
    scale = total / sum(weights.values())
    exact = {c: w * scale for c, w in weights.items()}
    quotas = {c: max(1, int(v)) for c, v in exact.items()}
    position = {c: i for i, c in enumerate(present)}
    by_remainder = sorted(present, key=lambda c: (-(exact[c] - int(exact[c])), position[c]))
    i = 0
    while sum(quotas.values()) < total:
        quotas[by_remainder[i % len(by_remainder)]] += 1
        i += 1
    while sum(quotas.values()) > total:  # the floor of one per class overshot: take from the largest
        largest = max(quotas, key=lambda c: (quotas[c], -position[c]))
        quotas[largest] -= 1
    return quotas


def epoch_order(labels: Sequence[str], power: float, seed: int, epoch: int) -> list[int]:
    """Example indices for one epoch (``len(labels)`` draws), classes tempered by ``power``, shuffled."""
    rng = epoch_rng(seed, epoch)
    members: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(label, []).append(index)
    quotas = class_quotas({c: len(m) for c, m in members.items()}, len(labels), power)
    order: list[int] = []
    for label in members:  # in order of first appearance: no class name decides anything
        pool = members[label]
        draws: list[int] = []
        while len(draws) < quotas[label]:
            cycle = list(pool)
            rng.shuffle(cycle)
            draws.extend(cycle)
        order.extend(draws[: quotas[label]])
    rng.shuffle(order)
    return order
