"""SmolLM2 LoRA with the default recipe on ~100 synthetic routing records raises function-name accuracy on
held-out records well above the base model's (slow: several minutes on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.models.engine import LocalEngine
from dataflywheel.models.types import ChatRequest, SamplingParams
from dataflywheel.settings import load_settings
from dataflywheel.training import customize
from tests.training import routing_rows

pytestmark = pytest.mark.slow


def _name(message: dict[str, Any]) -> str | None:
    calls = message.get("tool_calls") or []
    return calls[0]["function"]["name"] if calls else None


def test_smollm2_lora_learns_the_routing(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    rows = routing_rows(140, seed=21)
    train, held_out = rows[:100], rows[100:]
    dataset = tmp_path / "ds"
    dataset.mkdir()
    (dataset / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    # The default recipe for a 135M model (tiny), cut to 4 epochs (52 steps) to bound the test's time
    # (measured: base 0.00, tuned 0.62).
    result = customize(settings, "smollm2-135m-instruct", dataset, overrides={"epochs": 4})
    assert result.metrics["recipe"] == "tiny"
    assert result.metrics["config"]["learning_rate"] == 1e-3 and result.metrics["config"]["layers_fraction"] == 0.5
    assert result.metrics["epochs"][-1]["train_loss"] < 1.0

    engine = LocalEngine.from_name("smollm2-135m-instruct", settings, adapters={"tuned": result.adapter.path})
    requests = [
        ChatRequest(messages=r["messages"][:-1], tools=r["tools"], sampling=SamplingParams(max_tokens=48))
        for r in held_out
    ]
    expected = [_name(r["messages"][-1]) for r in held_out]
    base = [_name(r.message) for r in engine.chat(requests)]
    tuned = [
        _name(r.message)
        for r in engine.chat(
            [ChatRequest(q.messages, q.tools, q.tool_choice, q.sampling, adapter="tuned") for q in requests]
        )
    ]
    base_acc = sum(a == b for a, b in zip(base, expected, strict=True)) / len(expected)
    tuned_acc = sum(a == b for a, b in zip(tuned, expected, strict=True)) / len(expected)
    print(f"function name accuracy on {len(expected)} held-out records: base {base_acc:.2f}, tuned {tuned_acc:.2f}")
    assert tuned_acc >= base_acc + 0.3
