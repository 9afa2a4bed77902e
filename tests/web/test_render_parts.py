"""The pure parts of the page: sample verdicts, the curation funnel, answer differences, charts and the
typed result (old results, unreadable sections)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dataflywheel.results.funnel import funnel_of
from dataflywheel.results.model import EpochPoint, parse_result
from dataflywheel.results.samples import Verdict, verdict_of
from dataflywheel.web import format as fmt
from dataflywheel.web.charts import ChartPoint, accuracy_cost_chart, loss_chart
from dataflywheel.web.diff import Change, answer_diff, word_diff


def call(name: str, arguments: Any) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": name, "arguments": arguments}}],
    }


@pytest.mark.parametrize(
    ("sample", "verdict"),
    [
        ({"error": "timeout"}, Verdict.ERROR),
        ({"flags": ["unparsable_arguments"], "scores": {"function_name_accuracy": 1.0}}, Verdict.UNPARSABLE),
        ({"predicted_outcome": "no_call", "scores": {"function_name_accuracy": 1.0}}, Verdict.UNPARSABLE),
        ({"predicted_outcome": "text", "scores": {"function_name_accuracy": 0.0}}, Verdict.WRONG_TOOL),
        ({"predicted_outcome": "unknown_tool", "scores": {"function_name_accuracy": 0.0}}, Verdict.WRONG_TOOL),
        (
            {"predicted_outcome": "A", "scores": {"function_name_accuracy": 1.0, "required_arguments_accuracy": 0.0}},
            Verdict.WRONG_ARGUMENTS,
        ),
        (
            {"predicted_outcome": "A", "scores": {"function_name_accuracy": 1.0, "required_arguments_accuracy": 1.0}},
            Verdict.CORRECT,
        ),
        ({"predicted_outcome": "text", "scores": {"function_name_accuracy": 1.0}}, Verdict.CORRECT),
    ],
)
def test_a_samples_verdict_is_the_first_failure_that_applies(sample: dict[str, Any], verdict: Verdict) -> None:
    assert verdict_of({"error": None, **sample}) is verdict


def test_the_funnel_follows_the_curation_counts_with_reasons() -> None:
    manifest = {
        "counts": {"eval": 20, "train": 60, "val": 8},
        "classes": {"all": {"A": 50, "B": 38}},
        "curation": {
            "total_records": 120,
            "invalid_format": 7,
            "removed_quality": 5,
            "deduplicated": 20,
            "final_selected": 88,
            "limit_reached": False,
            "workload_type": "tool_calling",
            "dropped_by_reason": {
                "invalid_format: no messages": 7,
                "quality: too many tools": 5,
                "duplicate: same user turns": 20,
            },
        },
    }
    funnel = funnel_of(manifest)
    assert funnel is not None
    assert [(s.count, s.dropped) for s in funnel.steps] == [(120, 0), (113, 7), (108, 5), (88, 20)]
    assert funnel.steps[1].reasons == {"no messages": 7}
    assert funnel.split == {"eval": 20, "train": 60, "val": 8}
    assert funnel_of({"counts": {}}) is None


def test_the_diff_marks_a_wrong_identifier_a_paraphrase_and_a_missing_argument() -> None:
    reference = call("ToReturns", {"user_id": "4165", "query": "return the bent tent poles", "order": "A1"})
    prediction = call("ToReturns", {"user_id": "4172", "query": "return bent tent poles"})
    diff = answer_diff(reference, prediction)
    [c] = diff.calls
    assert c.name_change is Change.SAME
    args = {a.key: a for a in c.arguments}
    assert args["user_id"].change is Change.DIFFERENT
    assert [s.text for s in args["user_id"].prediction if s.changed] == ["4172"]
    query = args["query"]
    assert query.change is Change.DIFFERENT and [s.text.strip() for s in query.reference if s.changed] == ["the"]
    assert "".join(s.text for s in query.prediction) == "return bent tent poles"
    assert args["order"].change is Change.MISSING and args["order"].prediction == []
    assert diff.differs


def test_a_changed_phrase_is_marked_as_one_piece() -> None:
    left, right = word_diff("track my order please", "track the blue parcel please")
    assert [(s.text, s.changed) for s in left] == [("track ", False), ("my order", True), (" please", False)]
    assert [(s.text, s.changed) for s in right] == [("track ", False), ("the blue parcel", True), (" please", False)]


def test_the_diff_of_another_tool_and_of_a_text_answer() -> None:
    diff = answer_diff(call("A", {"q": "x"}), {"role": "assistant", "content": "I can help with that."})
    assert diff.calls[0].name_change is Change.MISSING and diff.calls[0].prediction_name is None
    assert [s.text for s in diff.prediction_text] == ["I can help with that."]
    assert not answer_diff(call("A", {"q": "x"}), call("A", {"q": "x"})).differs


def _points(svg: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'data-([a-z-]+)="([^"]*)"', g)) for g in re.findall(r'<g class="point[^>]*>', svg)]


def test_the_chart_carries_each_points_numbers_and_puts_unknown_costs_in_their_own_lane() -> None:
    points = [
        ChartPoint("a", "base-eval", 0.5, 0.3, 0.7, 0.02),
        ChartPoint("a", "customized-eval", 0.9, 0.8, 0.97, 0.02, recommended=True),
        ChartPoint("b", "base-eval", 0.25, 0.1, 0.4, None),
    ]
    svg = accuracy_cost_chart(
        points, metric_label="tool-name accuracy", teacher_cost=1.5, teacher_value=1.0, threshold=0.8
    )
    drawn = _points(svg)
    assert [(d["candidate"], d["eval-type"], d["mean"], d["ci-low"], d["cost"]) for d in drawn] == [
        ("a", "base-eval", "0.5", "0.3", "0.02"),
        ("a", "customized-eval", "0.9", "0.8", "0.02"),
        ("b", "base-eval", "0.25", "0.1", "unknown"),
    ]
    assert "log scale" in svg  # $0.02 next to $1.50: a linear axis would squeeze the candidates together
    assert ">unknown</text>" in svg and 'data-threshold="0.8"' in svg and "recommended" in svg
    assert "http" not in svg


def test_no_price_anywhere_still_draws_the_metric() -> None:
    svg = accuracy_cost_chart([ChartPoint("a", "icl-eval", 0.4, None, None, None)], metric_label="m")
    assert "no price configured for any candidate" in svg and len(_points(svg)) == 1


def test_the_loss_chart_marks_the_epoch_kept() -> None:
    curve = [EpochPoint(epoch=1, train_loss=1.2, val_loss=1.0), EpochPoint(epoch=2, train_loss=0.6, val_loss=0.8)]
    svg = loss_chart(curve, best_epoch=2)
    assert 'data-best="2"' in svg and svg.count('class="dot train"') == 2 and svg.count('class="dot val"') == 2
    assert loss_chart([EpochPoint(epoch=1)]) == ""


def test_an_old_result_parses_without_cost_and_a_broken_section_is_reported_not_raised() -> None:
    old = {
        "candidates": {
            "m": {
                "base-eval": {
                    "metrics": {"function_name_accuracy": {"mean": 0.5, "ci_low": 0.2, "ci_high": 0.8, "n": 4}},
                    "samples": 4,
                    "errors": 0,
                }
            }
        }
    }
    result = parse_result(old)
    assert result is not None and result.cost is None and result.recommendation is None and not result.problems
    assert result.evals()[0][2].metrics["function_name_accuracy"].mean == 0.5
    broken = parse_result({**old, "cost": {"currency": "USD"}, "latency": "fast"})
    assert broken is not None and broken.cost is None and broken.latency is None
    assert any(p.startswith("cost") for p in broken.problems) and any(p.startswith("latency") for p in broken.problems)


def test_money_reads_unknown_for_a_missing_price() -> None:
    assert fmt.money(None) == "unknown"
    assert fmt.money(0.0376) == "$0.0376" and fmt.money(12.4) == "$12.40" and fmt.money(3.0, "CHF") == "3.00 CHF"
