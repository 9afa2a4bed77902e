"""The learning curve's pure parts: which rows each fraction keeps, the fractions a job may ask for, the
trend, the advice and the line under the result table."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflywheel.cli.run import learning_curve_line
from dataflywheel.decision.recommend import MetricScore, _advice
from dataflywheel.errors import ConfigError
from dataflywheel.training.balance import row_class
from dataflywheel.training.learning_curve import (
    CurvePoint,
    parse_fractions,
    percent,
    stratified_subset,
    trend,
    write_subset,
)


def _row(tool: str | None) -> dict[str, Any]:
    answer: dict[str, Any] = {"role": "assistant", "content": "ok"}
    if tool:
        answer = {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": tool, "arguments": "{}"}}]}
    return {"messages": [{"role": "user", "content": "hi"}, answer]}


labels = st.lists(st.sampled_from(["A", "B", "C", None]), min_size=1, max_size=60)


@given(labels, st.floats(min_value=0.01, max_value=0.99))
def test_every_class_keeps_its_share_and_a_smaller_fraction_is_a_subset(tools: list[str | None], f: float) -> None:
    rows = [_row(t) for t in tools]
    kept = stratified_subset(rows, f)
    assert kept == sorted(kept)
    sizes = Counter(row_class(r) for r in rows)
    got = Counter(row_class(rows[i]) for i in kept)
    assert set(got) == set(sizes)  # no class dropped
    for label, n in sizes.items():
        assert got[label] == max(1, -(-f * n // 1))  # ceil, at least one
    assert set(stratified_subset(rows, f / 2)) <= set(kept)


def test_classes_come_from_structure_not_names() -> None:
    rows = [_row(t) for t in ["A", "A", "B", "B", "B", "B", None]]
    renamed = [_row({"A": "Zed", "B": "Yak"}.get(t, t) if t else None) for t in ["A", "A", "B", "B", "B", "B", None]]
    assert stratified_subset(rows, 0.5) == stratified_subset(renamed, 0.5) == [0, 2, 3, 6]


def test_write_subset_keeps_validation_rows_and_manifest(tmp_path: Path) -> None:
    source = tmp_path / "ds"
    source.mkdir()
    rows = [_row(t) for t in ["A", "B", "A", "B", "A", "B", "A", "B"]]
    (source / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (source / "val.jsonl").write_text(json.dumps(_row("A")) + "\n")
    (source / "manifest.json").write_text('{"workload_id": "w"}')
    assert write_subset(source, 0.25, tmp_path / "out") == 2
    written = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert written == [rows[0], rows[1]]
    assert (tmp_path / "out" / "val.jsonl").read_text() == (source / "val.jsonl").read_text()
    assert json.loads((tmp_path / "out" / "manifest.json").read_text()) == {"workload_id": "w"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0.5, 1.0], "1.0 is not a fraction"),
        ([0], "0 is not a fraction"),
        ([True], "True is not a fraction"),
        (["0.5"], "'0.5' is not a fraction"),
        ([0.5, 0.5], "repeat"),
        ([0.1, 0.2, 0.3, 0.4, 0.5], "at most 4"),
        ("0.5", "expected a list"),
    ],
)
def test_bad_fractions_name_the_setting(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=f"learning_curve: .*{message}"):
        parse_fractions(value)


def test_fractions_are_sorted_and_named() -> None:
    assert parse_fractions([0.5, 0.25]) == (0.25, 0.5)
    assert parse_fractions(None) == ()
    assert (percent(0.25), percent(0.125)) == ("25", "12_5")


def _curve(*means: float) -> list[CurvePoint]:
    fractions = [0.25, 0.5, 1.0][-len(means) :]
    return [
        CurvePoint(f, int(200 * f), {"function_name_accuracy": {"mean": m, "ci_low": m, "ci_high": m, "n": 30}})
        for f, m in zip(fractions, means, strict=True)
    ]


def test_trend_reads_the_last_step() -> None:
    assert trend(_curve(0.3, 0.5, 0.7), "function_name_accuracy") == "rising"
    assert trend(_curve(0.3, 0.69, 0.70), "function_name_accuracy") == "flat"
    assert trend(_curve(0.7), "function_name_accuracy") is None
    line = learning_curve_line("m", [p.to_dict() for p in _curve(0.3, 0.5, 0.7)])
    assert line == (
        "Learning curve m (tool-name accuracy): 25% (50 rows) 0.30, 50% (100 rows) 0.50, 100% (200 rows) 0.70; "
        "still rising: more logged records should help."
    )


def test_the_advice_says_whether_more_records_would_help() -> None:
    score = MetricScore("m", "customized", 0.7, 0.6, 0.8, 30)
    rising = _advice(score, 0.95, [], True, [(100, 0.5), (200, 0.7)])
    assert rising.startswith("Its customized accuracy still rose with the train rows (0.50 at 100 rows, 0.70 at 200)")
    flat = _advice(score, 0.95, [0.5, 0.7], True, [(100, 0.69), (200, 0.70)])
    assert "no longer rose" in flat and "validation" not in flat  # the measured curve wins over the epoch curve
