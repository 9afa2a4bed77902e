from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflywheel.curation.split import split_indices


@pytest.mark.parametrize(
    ("n", "eval_size", "val_ratio", "expected"),
    [  # the blueprint's expectations: (eval, val, train)
        (100, 5, 0.1, (5, 10, 85)),
        (200, 20, 0.15, (20, 27, 153)),
        (20, 2, 0.2, (2, 4, 14)),
        (10, 2, 0.25, (2, 2, 6)),
        (10, 3, 0.2, (3, 2, 5)),
        (10, 1, 0.33, (1, 3, 6)),
        (300, 100, 0.1, (100, 20, 180)),
        (1000, 100, 0.1, (100, 90, 810)),
    ],
)
def test_sizes_match_the_blueprint(n: int, eval_size: int, val_ratio: float, expected: tuple[int, int, int]) -> None:
    labels = [f"t{i % 4}" for i in range(n)]
    plan = split_indices(labels, eval_size, val_ratio, seed=1)
    assert (len(plan.eval), len(plan.val), len(plan.train)) == expected


def test_every_stage_is_stratified() -> None:
    labels = ["a"] * 500 + ["b"] * 300 + ["c"] * 150 + ["d"] * 50
    plan = split_indices(labels, 100, 0.1, seed=3)
    for part in (plan.eval, plan.val, plan.train):
        shares = Counter(labels[i] for i in part)
        for label, total in Counter(labels).items():
            assert abs(shares[label] / len(part) - total / len(labels)) <= 0.011, (label, part is plan.val)


def test_same_seed_same_split_other_seed_other_split() -> None:
    labels = [f"t{i % 3}" for i in range(200)]
    assert split_indices(labels, 20, 0.1, 7) == split_indices(labels, 20, 0.1, 7)
    assert split_indices(labels, 20, 0.1, 7).eval != split_indices(labels, 20, 0.1, 8).eval


def test_singleton_classes_do_not_crash() -> None:
    labels = ["a"] * 30 + ["lonely"] + ["b"] * 20
    plan = split_indices(labels, 10, 0.2, seed=0)
    assert sorted(plan.eval + plan.train + plan.val) == list(range(51))


def test_more_classes_than_eval_places() -> None:
    labels = [f"c{i}" for i in range(10) for _ in range(3)]
    plan = split_indices(labels, 4, 0.1, seed=0)
    assert len(plan.eval) == 4
    assert len({labels[i] for i in plan.eval}) == 4  # four different classes, not four of one


def test_eval_size_equal_to_records_warns_instead_of_crashing() -> None:
    plan = split_indices(["a", "b", "a"], 3, 0.1, seed=0)
    assert sorted(plan.eval) == [0, 1, 2] and plan.train == [] and plan.val == []
    assert "none for training" in plan.warnings[0]


def test_classes_keep_a_training_record_when_possible() -> None:
    labels = ["a"] * 50 + ["b"] * 2
    plan = split_indices(labels, 30, 0.0, seed=0)
    assert any(labels[i] == "b" for i in plan.train)


def test_tiny_data() -> None:
    plan = split_indices(["a"], 1, 0.5, seed=0)
    assert plan.eval == [0] and plan.train == [] and plan.val == []
    plan = split_indices(["a", "a"], 1, 0.5, seed=0)
    assert len(plan.eval) == 1 and len(plan.train) == 1 and plan.val == []


@settings(max_examples=200, deadline=None)
@given(
    labels=st.lists(st.sampled_from(["a", "b", "c", "d", "no_tool"]), min_size=1, max_size=120),
    eval_size=st.integers(1, 150),
    val_ratio=st.floats(0, 0.9),
    seed=st.integers(0, 2**31),
)
def test_split_is_a_partition_in_input_order(labels: list[str], eval_size: int, val_ratio: float, seed: int) -> None:
    plan = split_indices(labels, eval_size, val_ratio, seed)
    parts = plan.eval + plan.train + plan.val
    assert sorted(parts) == list(range(len(labels)))
    assert len(plan.eval) == min(eval_size, len(labels))
    for part in (plan.eval, plan.train, plan.val):
        assert part == sorted(part)
    if len(plan.eval) < len(labels):
        assert plan.train, "some record always trains when any is left"
    # stratification: each class's eval count is within one place of its proportional share
    n = len(labels)
    for label, total in Counter(labels).items():
        got = sum(1 for i in plan.eval if labels[i] == label)
        assert abs(got - len(plan.eval) * total / n) <= 1.0 + 1e-9 or total - got <= 1
