"""Class balance: epoch draws tempered towards equal classes, from the rows' structure only."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from dataflywheel.training.balance import class_quotas, epoch_order, row_class


def _row(name: str | None) -> dict[str, object]:
    answer: dict[str, object] = {"role": "assistant", "content": "hello"}
    if name:
        answer = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": name}}]}
    return {"messages": [{"role": "user", "content": "q"}, answer]}


def test_row_class_is_the_first_called_tool_or_no_tool() -> None:
    assert row_class(_row("Zeta")) == "Zeta"
    assert row_class(_row(None)) == "no_tool"
    assert row_class({"messages": []}) == "no_tool"


def test_square_root_balance_lifts_the_rare_class() -> None:
    quotas = class_quotas({"a": 90, "b": 10}, 100, power=0.5)
    assert quotas == {"a": 75, "b": 25}  # sqrt(90) : sqrt(10) = 3 : 1
    assert class_quotas({"a": 90, "b": 10}, 100, power=0.0) == {"a": 90, "b": 10}
    assert class_quotas({"a": 90, "b": 10}, 100, power=1.0) == {"a": 50, "b": 50}


def test_labels_are_opaque_renaming_classes_changes_nothing() -> None:
    labels = ["x"] * 30 + ["y"] * 6 + ["z"] * 4
    renamed = [{"x": "HandleOtherTalk", "y": "q", "z": "ToOrder"}[label] for label in labels]
    assert epoch_order(labels, 0.5, seed=3, epoch=1) == epoch_order(renamed, 0.5, seed=3, epoch=1)


def test_a_rare_class_is_cycled_before_any_repeat_and_epochs_differ() -> None:
    labels = ["a"] * 36 + ["b"] * 4
    order = epoch_order(labels, 1.0, seed=0, epoch=0)
    drawn_b = [i for i in order if labels[i] == "b"]
    assert len(order) == 40 and len(drawn_b) == 20
    assert Counter(drawn_b) == dict.fromkeys(range(36, 40), 5)  # each rare row 5 times
    assert len({i for i in order if labels[i] == "a"}) == 20  # the common class: a subset ...
    assert epoch_order(labels, 1.0, seed=0, epoch=1) != order  # ... another one next epoch


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from("abcdef"), min_size=1, max_size=80),
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(0, 5),
)
def test_an_epoch_keeps_its_length_and_every_class(labels: list[str], power: float, epoch: int) -> None:
    order = epoch_order(labels, power, seed=1, epoch=epoch)
    assert len(order) == len(labels)
    assert all(0 <= i < len(labels) for i in order)
    assert {labels[i] for i in order} == set(labels)
    if power == 0.0:
        assert Counter(labels[i] for i in order) == Counter(labels)
