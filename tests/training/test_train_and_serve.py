"""A trained adapter end to end: ``flywheel train`` registers it, ``flywheel serve-model --adapter NAME``
serves it, and it changes the model's answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.models.deployments import free_port, terminate_group
from dataflywheel.settings import load_settings
from dataflywheel.training.adapters import get_adapter, list_adapters
from tests.training import routing_rows


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "routing-ds"
    folder.mkdir()
    rows = routing_rows(10, seed=11)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    (folder / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[8:]))
    return folder


def _wait_models(base: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve-model exited with {proc.returncode}")
        try:
            return [m["id"] for m in httpx.get(f"{base}/models", timeout=2).json()["data"]]
        except httpx.HTTPError:
            time.sleep(0.3)
    raise AssertionError("serve-model did not get ready")


def _answer(base: str, model: str, row: dict[str, Any]) -> str:
    """The model's greedy answer to a training row's request (its messages up to the answer, its tools)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": row["messages"][:-1],
        "tools": row["tools"],
        "max_tokens": 24,
        "temperature": 0,
    }
    reply = httpx.post(f"{base}/chat/completions", json=body, timeout=60).json()
    return str(reply["choices"][0]["message"])


@pytest.mark.jobs
def test_train_registers_an_adapter_that_serve_model_serves(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("FLYWHEEL_HOME", str(home))
    runner = CliRunner()
    args = [
        "train",
        "--model",
        "tiny-random-llama",
        "--dataset",
        str(dataset),
        "--epochs",
        "8",
        "--batch-size",
        "4",
        "--lr",
        "0.05",
        "--lora-rank",
        "8",
        "--set",
        "threads=2",
        "--set",
        "warmup_ratio=0",
        "--set",
        "patience=8",
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    name = out["adapter"]
    assert name.startswith("tiny-random-llama-routing-ds-") and name.endswith(out["run_id"][:8])
    assert out["metrics"]["train_examples"] == 8 and out["metrics"]["val_examples"] == 2
    settings = load_settings(home=home)
    adapter = get_adapter(settings, name)
    assert (adapter.path / "adapter_model.safetensors").is_file()
    assert adapter.info["run_id"] == out["run_id"] and adapter.base_model == "tiny-random-llama"
    assert [a.name for a in list_adapters(settings)] == [name]

    listed = runner.invoke(app, ["adapters", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.stdout)[0]["name"] == name

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataflywheel.cli.main",
            "serve-model",
            "--model",
            "tiny-random-llama",
            "--adapter",
            name,
            "--port",
            str(port),
            "--threads",
            "1",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "FLYWHEEL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        assert _wait_models(base, proc) == ["tiny-random-llama", name]
        row = json.loads((dataset / "train.jsonl").read_text().splitlines()[0])
        assert _answer(base, name, row) != _answer(base, "tiny-random-llama", row)
    finally:
        terminate_group(proc)


def _flat(text: str) -> str:
    """CLI output without rich's line wrapping."""
    return " ".join(text.split())


@pytest.mark.jobs
def test_bad_training_options_name_the_problem(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    bad_key = runner.invoke(
        app, ["train", "--model", "tiny-random-llama", "--dataset", str(dataset), "--set", "epokhs=1"]
    )
    assert bad_key.exit_code == 2 and "training_config.epokhs: unknown key" in _flat(bad_key.output)
    unknown = runner.invoke(app, ["serve-model", "--model", "tiny-random-llama", "--adapter", "nope"])
    assert unknown.exit_code == 1 and "no registered adapter named 'nope'" in _flat(unknown.output)
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = runner.invoke(app, ["train", "--model", "tiny-random-llama", "--dataset", str(empty)])
    flat = _flat(missing.output)
    assert missing.exit_code == 1 and "empty/train.jsonl" in flat and "no such dataset file" in flat
