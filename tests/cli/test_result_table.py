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
