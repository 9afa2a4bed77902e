"""The three eval types end to end: datasets built from logs, the model behind ``flywheel serve-model``,
and a judge served by our OpenAI-compatible stand-in with scripted (sometimes malformed) replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import JsonlSource
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import load_settings, with_overrides
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from tests.serving import make_lora_adapter

runner = CliRunner()


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("eval-home")
    traffic = home / "t.jsonl"
    write_jsonl(SynthConfig(records=120, seed=3), traffic)
    settings = with_overrides(load_settings(home=home), data_split={"eval_size": 12, "min_total_records": 10})
    return build_datasets(JsonlSource(traffic), settings, workload_id="primary_assistant", client_id="northwind-1").path


def flywheel_eval(*args: str) -> dict:
    result = runner.invoke(
        app, ["eval", "--model", "tiny-random-llama", "--max-tokens", "24", "--json", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.jobs
def test_base_icl_and_customized_evals_against_serve_model(
    dataset_dir: Path, tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    adapter = make_lora_adapter(tiny_model_dir, tmp_path / "lora")
    base = flywheel_eval("--dataset", str(dataset_dir / "eval.jsonl"))
    icl = flywheel_eval("--dataset", str(dataset_dir / "icl.jsonl"))
    tuned = flywheel_eval("--dataset", str(dataset_dir / "eval.jsonl"), "--adapter", str(adapter))
    assert [s["eval_type"] for s in (base, icl, tuned)] == ["base-eval", "icl-eval", "customized-eval"]
    for summary in (base, icl, tuned):
        assert summary["samples"] == 12 and summary["errors"] == 0
        fn = summary["metrics"]["function_name_accuracy"]
        assert fn["n"] == 12 and fn["ci_low"] <= fn["mean"] <= fn["ci_high"]
        samples = [json.loads(line) for line in (Path(summary["out"]) / "samples.jsonl").read_text().splitlines()]
        assert len(samples) == 12 and all(s["raw_text"] is not None for s in samples)
    raw = lambda s: [json.loads(x)["raw_text"] for x in (Path(s["out"]) / "samples.jsonl").read_text().splitlines()]  # noqa: E731
    assert raw(base) != raw(tuned)  # the adapter answered, not the base model
    assert base["usage"]["prompt_tokens"] < icl["usage"]["prompt_tokens"]  # ICL prompts carry examples


@pytest.mark.jobs
def test_judge_on_a_stand_in_with_malformed_replies(
    dataset_dir: Path, tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = ["RATING: 1\nEXPLANATION: fine", "I refuse to answer in the format.", "RATING: 0\nEXPLANATION: wrong"]
    judge_app = create_standin_app(script, model="judge-70b")
    with BackgroundServer(judge_app) as judge:
        monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("FLYWHEEL_JUDGE__ENABLED", "true")
        monkeypatch.setenv("FLYWHEEL_JUDGE__BASE_URL", judge.base_url)
        monkeypatch.setenv("FLYWHEEL_JUDGE__MODEL", "judge-70b")
        summary = flywheel_eval("--dataset", str(dataset_dir / "eval.jsonl"), "--concurrency", "1")
    verdicts = judge_app.state.standin.requests
    assert len(verdicts) == 1 + 12  # the availability check, then one verdict per sample
    assert "*Ground truth*" in verdicts[-1]["messages"][1]["content"]
    j = summary["judge"]
    assert j["model"] == "judge-70b" and j["prompt_version"] == "v2"
    assert j["parse_failures"] == j["unscored"] == 4 and j["score"]["n"] == 8
    assert j["score"]["mean"] == pytest.approx(0.5)


@pytest.mark.jobs
def test_an_unreachable_judge_is_skipped_with_a_reason(
    dataset_dir: Path, tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLYWHEEL_JUDGE__ENABLED", "true")
    monkeypatch.setenv("FLYWHEEL_JUDGE__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("FLYWHEEL_JUDGE__MODEL", "gone")
    result = runner.invoke(
        app,
        ["eval", "--model", "tiny-random-llama", "--max-tokens", "8", "--dataset", str(dataset_dir / "eval.jsonl")],
        terminal_width=200,
    )
    assert result.exit_code == 0, result.output
    assert "judge unavailable" in result.output and "function_name_accuracy" in result.output
