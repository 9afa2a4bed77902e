"""The real small model behind ``flywheel serve-model``, asked by the official openai client (slow: ~1 min)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataflywheel.models.deployments import DeploymentManager
from dataflywheel.models.registry import SMOLLM2, local_model_dir, resolve_model
from dataflywheel.settings import Settings, load_settings

pytestmark = pytest.mark.slow


def train_tiny_lora(model_dir: str, out: Path, steps: int = 3) -> Path:
    """A LoRA adapter really trained (a few AdamW steps on one short routing answer), then saved."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(model_dir),
        LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
    )
    text = "<|im_start|>user\nWhere is my order?<|im_end|>\n<|im_start|>assistant\nLet me check your order.<|im_end|>"
    batch = tokenizer(text, return_tensors="pt")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    losses = []
    for _ in range(steps):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def smollm2_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(home=tmp_path_factory.mktemp("smollm2-home"))


def test_serve_model_answers_the_openai_client_with_base_and_adapter(
    smollm2_settings: Settings, tmp_path: Path
) -> None:
    from openai import OpenAI

    spec = resolve_model(SMOLLM2, smollm2_settings)
    adapter = train_tiny_lora(local_model_dir(spec, smollm2_settings), tmp_path / "order-lora")
    with DeploymentManager(smollm2_settings, ready_timeout=300) as manager:
        deployment = manager.deploy(spec, adapters={"order-lora": adapter})
        client = OpenAI(base_url=deployment.base_url, api_key="unused")
        names = [m.id for m in client.models.list().data]
        assert deployment.model in names and "order-lora" in names
        messages = [{"role": "user", "content": "Where is my order?"}]
        base = client.chat.completions.create(model=deployment.model, messages=messages, max_tokens=12)
        tuned = client.chat.completions.create(model="order-lora", messages=messages, max_tokens=12)
        assert base.choices[0].message.content
        assert tuned.model == "order-lora" and tuned.choices[0].message.content
        assert tuned.choices[0].message.content != base.choices[0].message.content
        assert tuned.usage is not None and tuned.usage.completion_tokens > 0
