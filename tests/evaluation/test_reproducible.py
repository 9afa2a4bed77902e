"""An eval's samples do not depend on its concurrency: the same eval against the same model server, one request
at a time and eight in flight (batched together by the server), gives the same answers, so the same scores.

In bf16 on CPU they did not (``serving.dtype`` and :func:`dataflywheel.models.device.serving_dtype` say why):
the server's ``auto`` precision is float32 on CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataflywheel.asyncio_util import run_async
from dataflywheel.datasets.build import build_datasets
from dataflywheel.datasets.sources import JsonlSource
from dataflywheel.evaluation.runner import EvalConfig, EvalType, load_dataset, run_eval
from dataflywheel.models.deployments import DeploymentManager
from dataflywheel.models.device import serving_dtype
from dataflywheel.models.registry import SMOLLM2, TINY_LLAMA, resolve_model
from dataflywheel.models.types import ChatRequest, ChatResult
from dataflywheel.settings import Settings, load_settings, with_overrides
from dataflywheel.synth.generator import SynthConfig, write_jsonl


def test_the_server_precision_is_float32_on_cpu_unless_asked_otherwise() -> None:
    import torch

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert serving_dtype("auto", cpu) == "float32"
    assert serving_dtype("auto", cuda) == "auto"  # bf16 (fp16 without it): the engine's choice
    assert serving_dtype("fastest", cpu) == "auto"
    assert serving_dtype("bfloat16", cpu) == "bfloat16"


def _build_eval_rows(tmp_path: Path, settings: Settings, n: int) -> list[dict[str, Any]]:
    traffic = tmp_path / "t.jsonl"
    write_jsonl(SynthConfig(records=120, seed=5), traffic)
    settings = with_overrides(settings, data_split={"eval_size": n, "min_total_records": 10})
    build = build_datasets(JsonlSource(traffic), settings, workload_id="primary_assistant", client_id="northwind-1")
    rows = load_dataset(build.path / "eval.jsonl")
    assert len(rows) == n
    return rows


def _samples_at(
    settings: Settings, model: str, rows: list[dict[str, Any]], out: Path, concurrencies: tuple[int, ...], dtype: str
) -> list[dict[str, str]]:
    """The eval's answers (record id -> raw text) at each concurrency, all against one model server."""
    with DeploymentManager(settings, ready_timeout=600) as manager:
        deployment = manager.deploy(resolve_model(model, settings))
        assert deployment.log_path is not None and f", {dtype}, " in deployment.log_path.read_text()
        health = deployment.base_url.removesuffix("/v1") + "/health"
        answers = []
        for i, concurrency in enumerate(concurrencies):
            client = deployment.client(max_concurrency=concurrency, timeout=600.0)

            async def chat(request: ChatRequest) -> ChatResult:
                return await client.chat(request, deployment.model)  # noqa: B023 (awaited in this loop)

            config = EvalConfig(EvalType.BASE, model, concurrency=concurrency, max_tokens=48)
            run_async(run_eval(rows, chat, out / f"eval-{i}-{concurrency}", config))
            lines = (out / f"eval-{i}-{concurrency}" / "samples.jsonl").read_text().splitlines()
            answers.append({s["record_id"]: s["raw_text"] for s in map(json.loads, lines)})
            if concurrency > 1:
                assert httpx.get(health).json()["batching"]["largest_batch"] > 1  # the server did batch them
    return answers


@pytest.mark.jobs
def test_an_eval_gives_the_same_samples_at_concurrency_1_and_8(tmp_path: Path, tiny_model_dir: str) -> None:
    """Smoke test on the tiny model (random weights: its answers did not move in bf16 either; the SmolLM2 test
    below is the one that tells float32 from bf16)."""
    settings = load_settings(home=tmp_path / "home")
    shutil.copytree(Path(tiny_model_dir), settings.home / "models" / TINY_LLAMA)
    rows = _build_eval_rows(tmp_path, settings, 16)
    one, eight, one_again = _samples_at(settings, TINY_LLAMA, rows, tmp_path, (1, 8, 1), "float32")
    assert len(one) == 16 and one == eight == one_again


@pytest.mark.slow
def test_smollm2_eval_samples_are_the_same_at_concurrency_1_and_8_in_float32_not_in_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(home=tmp_path / "home")
    rows = _build_eval_rows(tmp_path, settings, 16)
    one, eight = _samples_at(settings, SMOLLM2, rows, tmp_path / "auto", (1, 8), "float32")
    assert len(one) == 16 and one == eight
    # The same in bf16 (the server's precision before serving.dtype, `fastest` on this CPU): answers move.
    monkeypatch.setenv("FLYWHEEL_SERVING__DTYPE", "bfloat16")
    one16, eight16 = _samples_at(settings, SMOLLM2, rows, tmp_path / "bf16", (1, 8), "bfloat16")
    moved = sum(one16[k] != eight16[k] for k in one16)
    print(f"\nSmolLM2, 16 eval records: float32 0 of 16 answers differ at concurrency 1 vs 8, bf16 {moved} of 16")
    assert moved >= 1, "bf16 gave the same answers at both concurrencies: this test would not see the difference"


@pytest.mark.parametrize("value", ["float32", "fastest"])
def test_serving_dtype_is_a_setting(value: str, tmp_path: Path) -> None:
    assert load_settings(home=tmp_path, serving={"dtype": value}).serving.dtype == value
    with pytest.raises(Exception, match=r"serving\.dtype"):
        load_settings(home=tmp_path, serving={"dtype": "fp8"})
