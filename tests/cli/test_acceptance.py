"""The foundation's acceptance path, through the real ``flywheel`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app

runner = CliRunner()


def flywheel(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def loaded(tmp_path: Path) -> Path:
    traffic = tmp_path / "t.jsonl"
    flywheel("synth", "--records", "2000", "--seed", "1", "--out", str(traffic))
    report = json.loads(flywheel("logs", "load", str(traffic), "--json"))
    assert report["loaded"] == 2000 and report["skipped"] == 0
    return traffic


def test_build_keeps_class_proportions_and_is_byte_identical_for_a_seed(loaded: Path) -> None:
    ids = ["--workload-id", "primary_assistant", "--client-id", "northwind-1"]
    first = json.loads(flywheel("datasets", "build", *ids, "--json"))
    counts = first["counts"]
    assert counts["eval"] == 100 and counts["train"] + counts["val"] + counts["eval"] == counts["selected"]
    classes = first["classes"]
    whole = {c: n / counts["selected"] for c, n in classes["all"].items()}
    for part in ("eval", "train", "val"):
        for label, share in whole.items():
            got = classes[part].get(label, 0) / counts[part]
            assert abs(got - share) <= 0.05, (part, label, got, share)

    second = json.loads(flywheel("datasets", "build", *ids, "--json"))
    assert second["path"] != first["path"]
    for name in ("eval.jsonl", "icl.jsonl", "train.jsonl", "val.jsonl"):
        assert (Path(first["path"]) / name).read_bytes() == (Path(second["path"]) / name).read_bytes()
        assert first["files"][name]["sha256"] == second["files"][name]["sha256"]

    other = json.loads(flywheel("datasets", "build", *ids, "--seed", "2", "--json"))
    assert other["files"]["eval.jsonl"]["sha256"] != first["files"]["eval.jsonl"]["sha256"]

    listed = json.loads(flywheel("datasets", "list", *ids, "--json"))
    assert [b["build_id"] for b in listed] == sorted(b["build_id"] for b in listed) and len(listed) == 3


def test_per_build_overrides_apply(loaded: Path) -> None:
    out = json.loads(
        flywheel(
            "datasets",
            "build",
            "--workload-id",
            "primary_assistant",
            "--client-id",
            "northwind-1",
            "--eval-size",
            "40",
            "--val-ratio",
            "0.25",
            "--limit",
            "400",
            "--min-total-records",
            "10",
            "--json",
        )
    )
    assert out["counts"] == {"selected": 400, "eval": 40, "icl": 40, "train": 270, "val": 90}
    assert out["settings"]["data_split"]["eval_size"] == 40


def test_reloading_the_same_file_adds_nothing(loaded: Path) -> None:
    again = json.loads(flywheel("logs", "load", str(loaded), "--json"))
    assert again["loaded"] == 0 and again["duplicates"] == 2000
    stats = json.loads(flywheel("logs", "stats", "--json"))
    assert stats == [
        {
            "workload_id": "primary_assistant",
            "client_id": "northwind-1",
            "records": 2000,
            "first_timestamp": stats[0]["first_timestamp"],
            "last_timestamp": stats[0]["last_timestamp"],
        }
    ]


def test_bad_override_names_the_setting(loaded: Path) -> None:
    result = runner.invoke(
        app,
        ["datasets", "build", "--workload-id", "primary_assistant", "--client-id", "northwind-1", "--val-ratio", "1.5"],
    )
    assert result.exit_code == 2
    assert "data_split.val_ratio" in result.output


def test_unknown_workload_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "build", "--workload-id", "nope", "--client-id", "x"])
    assert result.exit_code == 1
    assert "0 usable records" in result.output and "min_total_records" in result.output


def test_bad_config_file_fails_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("icl:\n  max_examples: -1\n")
    result = runner.invoke(app, ["--config", str(cfg), "logs", "stats"])
    assert result.exit_code == 2 and "icl.max_examples" in result.output


def test_human_output_is_tables(loaded: Path) -> None:
    result = runner.invoke(
        app,
        ["datasets", "build", "--workload-id", "primary_assistant", "--client-id", "northwind-1"],
        terminal_width=160,
    )
    assert result.exit_code == 0
    assert "Split by class" in result.output and "ToReturnsDesk" in result.output and "eval.jsonl" in result.output


@pytest.mark.jobs
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    args = [
        "demo",
        "--records",
        "300",
        "--model",
        "tiny-random-llama",
        "--eval-records",
        "5",
        "--train-records",
        "16",
        "--epochs",
        "1",
    ]
    result = runner.invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Split by class" in out and "Results" in out
    for eval_type in ("base-eval", "icl-eval", "customized-eval"):
        assert eval_type in out
    assert "completed. Done in" in out
    # The cost model at example prices, labelled as such, then the recommendation under the table.
    assert "Example prices" in out and "Cost and latency" in out and "Recommendation: " in out
    assert list((tmp_path / ".flywheel" / "datasets").rglob("manifest.json"))
    assert list((tmp_path / ".flywheel" / "adapters").glob("tiny-random-llama-primary_assistant-*"))


@pytest.mark.jobs
def test_semantic_icl_build_injects_similar_examples(loaded: Path) -> None:
    out = json.loads(
        flywheel(
            "datasets",
            "build",
            "--workload-id",
            "primary_assistant",
            "--client-id",
            "northwind-1",
            "--icl-selection",
            "semantic_similarity",
            "--limit",
            "300",
            "--eval-size",
            "20",
            "--min-total-records",
            "10",
            "--json",
        )
    )
    assert out["icl"]["selection"] == "semantic_similarity"
    assert out["icl"]["examples_per_record_min"] >= 1
    rows = [json.loads(line) for line in (Path(out["path"]) / "icl.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (Path(out["path"]) / "eval.jsonl").read_text().splitlines()]
    assert [r["record_id"] for r in rows] == [r["record_id"] for r in evals]
    for icl_row, eval_row in zip(rows, evals, strict=True):
        system = icl_row["request"]["messages"][0]["content"]
        assert 1 <= system.count("For example") <= 3  # icl.max_examples
        assert system.endswith(eval_row["request"]["messages"][0]["content"])
