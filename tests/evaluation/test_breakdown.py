"""Per-class metrics and confusion counts over hand-made scored samples, and the predicted outcome of each
kind of answer."""

from __future__ import annotations

from typing import Any

import pytest

from dataflywheel.curation.workload import label_of_calls
from dataflywheel.evaluation.breakdown import (
    PredictedOutcome,
    confusion,
    per_class_metrics,
    predicted_outcome,
)
from dataflywheel.evaluation.metrics import METRICS, score_sample
from dataflywheel.evaluation.stats import aggregate

TOOLS = [
    {"type": "function", "function": {"name": "ToOrderStatus", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "ToReturnProcessing", "parameters": {"type": "object"}}},
]


def call(name: str, arguments: str = "{}") -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": name, "arguments": arguments}}]}


def text(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def sample(reference: dict[str, Any], prediction: dict[str, Any] | None, *, failed: bool = False) -> dict[str, Any]:
    """A scored sample as the runner stores it."""
    scores = dict.fromkeys(METRICS) if failed else score_sample(reference, prediction, TOOLS).scores
    return {
        "reference_class": label_of_calls(reference.get("tool_calls") or []),
        "predicted_outcome": predicted_outcome(prediction, TOOLS, failed=failed),
        "error": "ConnectionError: gone" if failed else None,
        "scores": scores,
    }


@pytest.mark.parametrize(
    ("prediction", "tools", "failed", "expected"),
    [
        (call("ToOrderStatus"), TOOLS, False, "ToOrderStatus"),
        (call("ToReturnProcessing", "not json"), TOOLS, False, "ToReturnProcessing"),  # the name is usable
        (call("Refund"), TOOLS, False, PredictedOutcome.UNKNOWN_TOOL),
        (call("ToOrderStatus"), None, False, PredictedOutcome.UNKNOWN_TOOL),  # the request offered no tools
        (text("Your order ships tomorrow."), TOOLS, False, PredictedOutcome.TEXT),
        (text([{"type": "text", "text": "Hello"}]), TOOLS, False, PredictedOutcome.TEXT),
        (text(""), TOOLS, False, PredictedOutcome.NO_CALL),
        (text("   \n"), TOOLS, False, PredictedOutcome.NO_CALL),
        (text(None), TOOLS, False, PredictedOutcome.NO_CALL),
        (
            {"role": "assistant", "content": "x", "tool_calls": [{"function": {"arguments": "{}"}}]},
            TOOLS,
            False,
            PredictedOutcome.NO_CALL,
        ),  # a call without a name
        ({"role": "assistant", "content": None, "tool_calls": ["garbage"]}, TOOLS, False, PredictedOutcome.NO_CALL),
        (None, TOOLS, False, PredictedOutcome.NO_CALL),
        (call("ToOrderStatus"), TOOLS, True, PredictedOutcome.ERROR),
    ],
)
def test_predicted_outcome_of_each_kind_of_answer(
    prediction: dict[str, Any] | None, tools: list[dict[str, Any]] | None, failed: bool, expected: str
) -> None:
    assert predicted_outcome(prediction, tools, failed=failed) == expected


def test_predicted_outcome_is_the_first_call_of_several() -> None:
    two = call("ToReturnProcessing")
    two["tool_calls"].append({"function": {"name": "Refund", "arguments": "{}"}})
    assert predicted_outcome(two, TOOLS) == "ToReturnProcessing"


SAMPLES = [
    sample(call("ToOrderStatus", '{"id": 1}'), call("ToOrderStatus", '{"id": 1}')),
    sample(call("ToOrderStatus", '{"id": 2}'), call("ToOrderStatus", '{"id": 3}')),
    sample(call("ToOrderStatus"), call("ToReturnProcessing")),
    sample(call("ToOrderStatus"), text("I will check.")),
    sample(call("ToOrderStatus"), None, failed=True),
    sample(call("ToReturnProcessing"), call("Refund")),
    sample(call("ToReturnProcessing"), text("")),
    sample(text("We open at 9."), text("At nine.")),
    sample(text("We open at 9."), call("ToOrderStatus")),
]


def test_confusion_counts_every_outcome_label() -> None:
    table = confusion(SAMPLES)
    assert table.to_dict() == {
        "ToOrderStatus": {"ToOrderStatus": 2, "ToReturnProcessing": 1, "error": 1, "text": 1},
        "no_tool": {"ToOrderStatus": 1, "text": 1},
        "ToReturnProcessing": {"no_call": 1, "unknown_tool": 1},
    }
    assert table.total == len(SAMPLES)
    assert set(table.predicted_labels()) >= {o.value for o in PredictedOutcome}
    assert table.predicted_labels()[0] == "ToOrderStatus"  # 3 samples, the most frequent outcome
    assert table.count("no_tool", "text") == 1 and table.count("no_tool", "error") == 0


def test_confusion_agrees_with_function_name_accuracy_for_single_calls() -> None:
    # One call per answer: a tool-name hit is exactly the diagonal (text for no_tool).
    table = confusion(SAMPLES)
    right = sum(s["scores"]["function_name_accuracy"] or 0 for s in SAMPLES if s["error"] is None)
    diagonal = sum(table.count(c, c) for c in table.counts) + table.count("no_tool", "text")
    assert right == diagonal == 3


def test_per_class_metrics_aggregate_each_class_over_its_successful_samples() -> None:
    per_class = per_class_metrics(SAMPLES, METRICS)
    assert list(per_class) == ["ToOrderStatus", "ToReturnProcessing", "no_tool"]  # by size, then name
    order = per_class["ToOrderStatus"]
    assert (order.n, order.errors) == (5, 1)
    fn = order.metrics["function_name_accuracy"]
    assert fn.n == 4 and fn.mean == pytest.approx(0.5) and fn.ci_low is not None and fn.ci_high is not None
    assert fn.ci_low <= 0.5 <= fn.ci_high
    ok = [s for s in SAMPLES if s["reference_class"] == "ToOrderStatus" and s["error"] is None]
    for metric in METRICS:  # the same aggregate as the overall one, over the class's samples
        assert order.metrics[metric] == aggregate(s["scores"][metric] for s in ok)
    assert per_class["ToReturnProcessing"].metrics["function_name_accuracy"].mean == 0.0
    assert per_class["no_tool"].metrics["call_recall"].n == 0  # undefined for text references
    as_json = order.to_dict()
    assert as_json["n"] == 5 and as_json["errors"] == 1
    assert as_json["metrics"]["function_name_accuracy"] == fn.to_dict()


def test_no_samples_give_empty_results() -> None:
    assert per_class_metrics([], METRICS) == {}
    assert confusion([]).to_dict() == {} and confusion([]).total == 0
