"""Class-aware stratified split into eval / train / validation sets.

Stage 1 takes ``eval_size`` records for evaluation, stage 2 takes ``ceil(val_ratio * rest)`` of the rest for
validation; the remainder trains. Both stages are stratified by class label (first tool name or
``no_tool``) with the largest-remainder method: each class gets ``floor(k * n_c / n)`` places, and the
places left go to the classes with the largest remainders (ties: larger class, then label). Unlike the
blueprint (sklearn's ``train_test_split``), nothing here can raise on odd data:

* a singleton class is simply a class of one (it goes wherever the remainders send it);
* more classes than eval places: the largest remainders win, the rest stay for training;
* ``eval_size`` >= the number of records: everything is eval, and a warning says training is impossible;
* a class with at least two records keeps one for training when the quotas allow it, so the model can
  learn every class it is evaluated on;
* stage 2 is stratified too (the blueprint's never is, because it compares a float to a class count).

Randomness comes from one ``random.Random(seed)`` used in a fixed order (classes sorted by label), so a
seed gives the same split on every run, machine and Python version. Within each set, records keep their
input order (newest first).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SplitPlan:
    """Indices into the input sequence for each set, each in input order."""

    eval: list[int]
    train: list[int]
    val: list[int]
    warnings: list[str] = field(default_factory=list)


def _largest_remainder(sizes: dict[str, int], k: int, caps: dict[str, int]) -> dict[str, int]:
    """Apportion ``k`` places over classes proportionally to ``sizes``, never above ``caps``."""
    n = sum(sizes.values())
    quota = {c: min((k * s) // n, caps[c]) for c, s in sizes.items()}
    left = k - sum(quota.values())
    # Remainder of each class as an exact integer (k*s mod n), largest first; ties: bigger class, label.
    order = sorted(sizes, key=lambda c: (-((k * sizes[c]) % n), -sizes[c], c))
    while left > 0:
        progressed = False
        for c in order:
            if left == 0:
                break
            if quota[c] < caps[c]:
                quota[c] += 1
                left -= 1
                progressed = True
        if not progressed:
            break
    return quota


def stratified_take(
    indices: Sequence[int], labels: Sequence[str], k: int, rng: random.Random, keep_one: bool = True
) -> tuple[list[int], list[int]]:
    """Take ``k`` of ``indices`` stratified by ``labels[i]``; return (taken, rest), each in input order."""
    if k <= 0:
        return [], list(indices)
    if k >= len(indices):
        return list(indices), []
    groups: dict[str, list[int]] = {}
    for i in indices:
        groups.setdefault(labels[i], []).append(i)
    sizes = {c: len(g) for c, g in groups.items()}
    caps = {c: (s - 1 if keep_one and s >= 2 else s) for c, s in sizes.items()}
    if sum(caps.values()) < k:
        caps = dict(sizes)
    quota = _largest_remainder(sizes, k, caps)
    taken: set[int] = set()
    for c in sorted(groups):
        members = list(groups[c])
        rng.shuffle(members)
        taken.update(members[: quota[c]])
    return [i for i in indices if i in taken], [i for i in indices if i not in taken]


def split_indices(labels: Sequence[str], eval_size: int, val_ratio: float, seed: int) -> SplitPlan:
    """Split ``len(labels)`` records into eval / train / val index lists (see the module docstring)."""
    n = len(labels)
    rng = random.Random(seed)
    warnings: list[str] = []
    everything = list(range(n))
    eval_n = min(eval_size, n)
    if eval_size >= n:
        warnings.append(
            f"eval_size ({eval_size}) >= records ({n}): every record is used for evaluation and none "
            "for training or validation"
        )
    eval_idx, rest = stratified_take(everything, labels, eval_n, rng)
    n_rest = len(rest)
    val_n = math.ceil(val_ratio * n_rest - 1e-9) if val_ratio > 0 else 0
    val_n = min(val_n, n_rest - 1) if n_rest >= 2 else 0  # always leave a training record
    val_idx, train_idx = stratified_take(rest, labels, val_n, rng)
    missing = sorted({labels[i] for i in eval_idx} - {labels[i] for i in train_idx})
    if train_idx and missing:
        warnings.append(f"classes evaluated but absent from training (too few records): {', '.join(missing)}")
    return SplitPlan(eval=eval_idx, train=train_idx, val=val_idx, warnings=warnings)
