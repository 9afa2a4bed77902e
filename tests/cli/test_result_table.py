"""The job result table of ``flywheel run``, ``jobs watch`` and the demo: the metrics, then tool-name accuracy
per reference class for each eval type, in an 80-column terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from dataflywheel.cli.run import result_table
from dataflywheel.evaluation.breakdown import confusion, per_class_metrics
from dataflywheel.evaluation.metrics import METRICS
from dataflywheel.evaluation.stats import aggregate

LONG = "ToWarrantyClaimsAndExtendedProtectionPlans"


def eval_result(hits: dict[str, list[float]]) -> dict[str, Any]:
    """An eval type's entry of a job result, from per-class function-name scores (1 right, 0 wrong)."""
    samples = [
        {
            "reference_class": label,
            "predicted_outcome": label if hit else "text",
            "error": None,
            "scores": {"function_name_accuracy": hit},
        }
        for label, scores in hits.items()
        for hit in scores
    ]
    return {
        "metrics": {
            "function_name_accuracy": aggregate(s["scores"]["function_name_accuracy"] for s in samples).to_dict()
        },
        "per_class": {c: e.to_dict() for c, e in per_class_metrics(samples, METRICS).items()},
        "confusion": confusion(samples).to_dict(),
        "judge": None,
        "samples": len(samples),
        "errors": 0,
    }


def words(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())


def render(result: dict[str, Any]) -> list[str]:
    console = Console(width=80, record=True, color_system=None)
    console.print(result_table(result))
    return console.export_text().splitlines()


def test_per_class_accuracy_per_eval_type_fits_80_columns() -> None:
    evals = {
        "base-eval": eval_result({"ToOrderTracking": [0, 0, 1, 0], LONG: [0, 0], "no_tool": [1]}),
        "icl-eval": eval_result({"ToOrderTracking": [1, 1, 1, 0], LONG: [1, 0], "no_tool": [1]}),
        "customized-eval": eval_result({"ToOrderTracking": [1, 1, 1, 1], LONG: [1, 1], "no_tool": [0]}),
    }
    lines = render({"candidates": {"smollm2": evals}})
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    text = words(lines)
    assert "Results" in text and "Tool name accuracy per reference class" in text
    order_row = next(line for line in lines if "ToOrderTracking" in line)
    assert [c.strip() for c in order_row.split("│")[2:6]] == ["4", "0.250", "0.750", "1.000"]
    no_tool = next(line for line in lines if "no_tool" in line)
    assert [c.strip() for c in no_tool.split("│")[2:6]] == ["1", "1.000", "1.000", "0.000"]
    assert LONG[:10] in text and LONG[-6:] in text  # folded, not cut


def test_several_candidates_get_one_per_class_table_each() -> None:
    one = {"base-eval": eval_result({"ToOrderTracking": [1, 0]})}
    text = words(render({"candidates": {"model-a": one, "model-b": one}}))
    assert "per reference class (model-a)" in text and "per reference class (model-b)" in text


def test_a_result_stored_before_per_class_existed_shows_the_metrics_only() -> None:
    ev = eval_result({"ToOrderTracking": [1, 0]})
    del ev["per_class"], ev["confusion"]
    text = words(render({"candidates": {"model-a": {"base-eval": ev}}}))
    assert "Results" in text and "per reference class" not in text and "0.500" in text


def test_the_lora_run_is_summarised_under_the_tables() -> None:
    from dataflywheel.training.report import training_summary

    metrics = {
        "recipe": "tiny",
        "config": {"epochs": 4, "batch_size": 8, "learning_rate": 0.001, "adapter_dim": 16, "class_balance": True},
        "class_counts": {"a": 10, "no_tool": 2},
        "epochs": [
            {"epoch": 1, "train_loss": 1.2, "val_loss": 1.0, "val_function_name_accuracy": 0.5},
            {"epoch": 2, "train_loss": 0.6, "val_loss": 0.7, "val_function_name_accuracy": 0.875},
            {"epoch": 3, "train_loss": 0.4, "val_loss": 0.8, "val_function_name_accuracy": 0.75},
        ],
        "best_epoch": 2,
        "stopped_early": True,
    }
    summary = training_summary(metrics)
    assert [e["val_function_name_accuracy"] for e in summary["curve"]] == [0.5, 0.875, 0.75]
    result = {"candidates": {"m": {"base-eval": eval_result({"a": [1.0]})}}, "training": {"m": summary}}
    console = Console(width=80, record=True)
    console.print(result_table(result))
    text = " ".join(console.export_text().split())
    assert "LoRA m: recipe tiny; lr 0.001, rank 16, batch 8, 3 of 4 epochs" in text
    assert "kept epoch 2 (validation tool-name accuracy 0.88), stopped early" in text


def decision_keys(candidates: dict[str, dict[str, float | None]], estimated: bool = False) -> dict[str, Any]:
    """``cost``, ``latency`` and ``recommendation`` of a result: per candidate, eval type -> GPU-hour price
    (None: no price set), each eval measured at 2 requests/s with latencies 0.2-0.6 s."""
    from dataflywheel.decision.cost import Price, TokenCounts, eval_cost, latency_row, measure_eval, teacher_cost
    from dataflywheel.decision.decide import Decision
    from dataflywheel.decision.recommend import MetricScore, recommend
    from dataflywheel.decision.schema import CostReport, RecommendationRule, TokenSource, Traffic

    traffic = Traffic(
        records=1001, first="2025-04-30T08:00:00+00:00", last="2025-05-10T08:00:00+00:00", records_per_day=100.0
    )
    source = TokenSource.TOKENIZER if estimated else TokenSource.LOGGED_USAGE
    tokens = TokenCounts(1045.0, 20.0, source)
    teacher = teacher_cost("big-70b", tokens, Price(0.88, 0.88), traffic)
    samples = [
        {"usage": {"prompt_tokens": 900, "completion_tokens": 25}, "latency_s": t, "error": None}
        for t in (0.2, 0.3, 0.4, 0.5, 0.6)
    ]
    measures, costs = [], []
    for candidate, prices in candidates.items():
        for eval_type, hourly in prices.items():
            m = measure_eval(candidate, eval_type, samples, wall_s=2.5)
            measures.append(m)
            costs.append(eval_cost(m, Price(per_gpu_hour=hourly, setting=f"candidates[{candidate}]"), teacher, traffic))
    report = CostReport(teacher=teacher, traffic=traffic, evals=costs, judge=None)
    rule = RecommendationRule(metric="function_name_accuracy", min_ratio=0.95, teacher_value=1.0)
    scores = [MetricScore(c.candidate, c.eval_type, 1.0, 1.0, 1.0, 5) for c in costs]
    rec = recommend(rule, scores, costs, teacher_cost_per_1k=teacher.cost_per_1k)
    return Decision(report, [latency_row(m) for m in measures], rec).to_result()


def test_cost_and_latency_per_eval_type_end_the_table_with_the_recommendation() -> None:
    evals = {k: eval_result({"ToOrderTracking": [1, 1, 1, 1, 1]}) for k in ("base-eval", "customized-eval")}
    result = {"candidates": {"smollm2": evals}, **decision_keys({"smollm2": {"base": None, "customized": 0.80}})}
    lines = render(result)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    cells = {
        row.split("│")[1].strip(): [c.strip() for c in row.split("│")[2:6]]
        for row in lines
        if row.startswith("│") and len(row.split("│")) == 7
    }
    # 0.80 an hour at 2 requests/s: 0.80 / 7,200 per request; 100 requests a day for 30 days.
    assert cells["customized-eval"] == ["$0.11", "$0.33", "88% less", "0.40 / 0.60"]
    assert cells["base-eval"] == ["unknown", "unknown", "-", "0.40 / 0.60"]
    assert cells["logged model"] == ["$0.94", "$2.81", "", "-"]  # (1,045 + 20) x 0.88 / 1,000
    text = words(lines)
    assert "Unknown costs: no price set: candidates[smollm2]." in text
    assert "Traffic: 100.0 requests a day (1,001 logged from 2025-04-30 to 2025-05-10)." in text
    assert text.endswith(
        "Recommendation: Use smollm2 customized: function-name accuracy 1.00 [1.00, 1.00] reaches 0.95 x the "
        "logged model's at $0.11 per 1,000 requests, 88% less."
    )


def test_estimated_teacher_tokens_are_marked_and_several_candidates_get_a_column() -> None:
    one = {"base-eval": eval_result({"ToOrderTracking": [1, 0]})}
    keys = decision_keys({"model-a": {"base": 0.5}, "model-b": {"base": None}}, estimated=True)
    lines = render({"candidates": {"model-a": one, "model-b": one}, **keys})
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    text = words(lines)
    assert "logged model*" in text and "* Logged model (big-70b): 1,045 prompt + 20 completion tokens" in text
    assert "(counted: an estimate)" in text
    assert "Cost and latency (model-a)" in text and "Cost and latency (model-b)" in text
    tables = "\n".join(lines).split("Cost and latency")
    a_row = next(line for line in tables[1].splitlines() if "base-eval" in line)
    b_row = next(line for line in tables[2].splitlines() if "base-eval" in line)
    assert [c.strip() for c in a_row.split("│")[2:4]] == ["$0.069", "$0.21"]  # 0.5 / 7,200 x 1,000
    assert [c.strip() for c in b_row.split("│")[2:4]] == ["unknown", "unknown"]


def test_a_judge_that_was_skipped_is_named_with_the_reason() -> None:
    reason = "judge judge-70b at http://127.0.0.1:9/v1: judge unavailable: EndpointError: connection failed"
    evals = {"base-eval": eval_result({"ToOrderStatus": [1.0, 0.0]})}
    skipped = {"candidates": {"m": evals}, "judge": {"status": "skipped", "model": "judge-70b", "reason": reason}}
    assert f"Judge judge-70b skipped, no judge metrics: {reason}" in words(render(skipped))
    not_configured = {"candidates": {"m": evals}, "judge": {"status": "skipped", "model": None, "reason": "none"}}
    assert "Judge" not in words(render(not_configured))
