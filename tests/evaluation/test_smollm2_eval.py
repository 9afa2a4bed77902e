"""SmolLM2 base-eval on 50 synthetic routing records, on CPU (slow: a few minutes)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import JsonlSource
from dataflywheel.evaluation.metrics import METRICS
from dataflywheel.settings import load_settings, with_overrides
from dataflywheel.synth.generator import SynthConfig, write_jsonl

pytestmark = pytest.mark.slow


def test_smollm2_base_eval_reports_every_metric_with_an_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    write_jsonl(SynthConfig(records=300, seed=11), tmp_path / "t.jsonl")
    settings = with_overrides(load_settings(home=home), data_split={"eval_size": 50})
    build = build_datasets(JsonlSource(tmp_path / "t.jsonl"), settings, workload_id="w", client_id="c")
    start = time.perf_counter()
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            "smollm2-135m-instruct",
            "--dataset",
            str(build.path / "eval.jsonl"),
            "--max-tokens",
            "64",
            "--json",
        ],
    )
    wall = time.perf_counter() - start
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["samples"] == 50 and summary["errors"] == 0
    for metric in METRICS:
        agg = summary["metrics"][metric]
        if agg["n"]:
            assert agg["ci_low"] <= agg["mean"] <= agg["ci_high"]
    assert summary["metrics"]["function_name_accuracy"]["n"] == 50
    print(
        f"\nSmolLM2 base-eval, 50 records: {wall:.1f} s wall (eval {summary['wall_s']:.1f} s); "
        + ", ".join(f"{m}={summary['metrics'][m]['mean']}" for m in METRICS)
    )
