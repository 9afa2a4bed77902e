"""The adapter registry: stable names, atomic registration, listing, deletion and the merged export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dataflywheel.settings import Settings
from dataflywheel.training.adapters import (
    AdapterNotFoundError,
    adapter_name,
    delete_adapter,
    get_adapter,
    list_adapters,
    merge_adapter,
    register_adapter,
)
from tests.serving import make_lora_adapter


def test_names_are_stable_and_safe() -> None:
    assert adapter_name("smollm2-135m-instruct", "primary_assistant", "9e749f95581249c1") == (
        "smollm2-135m-instruct-primary_assistant-9e749f95"
    )
    assert adapter_name("org/model:v1", "a b", "x") == "org-model-v1-a-b-x"


def test_register_list_get_delete(settings: Settings, tiny_model_dir: str, tmp_path: Path) -> None:
    source = make_lora_adapter(tiny_model_dir, tmp_path / "lora")
    (settings.home / "adapters" / ".half.tmp-1").mkdir(parents=True)  # a registration cut short: never listed
    first = register_adapter(settings, "tiny-w-00000001", source, {"base_model": "tiny-random-llama", "run_id": "1"})
    register_adapter(settings, "tiny-w-00000002", source, {"base_model": "tiny-random-llama", "run_id": "2"})
    assert (first.path / "adapter_model.safetensors").is_file() and first.base_model == "tiny-random-llama"
    assert [a.name for a in list_adapters(settings)] == ["tiny-w-00000002", "tiny-w-00000001"]  # newest first
    assert get_adapter(settings, "tiny-w-00000001").info["run_id"] == "1"
    for bad in ("nope", "../adapters", ".half.tmp-1"):
        with pytest.raises(AdapterNotFoundError):
            get_adapter(settings, bad)
    assert delete_adapter(settings, "tiny-w-00000001") and not delete_adapter(settings, "tiny-w-00000001")
    assert [a.name for a in list_adapters(settings)] == ["tiny-w-00000002"]


def test_merged_export_answers_like_base_plus_adapter(settings: Settings, tiny_model_dir: str, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = make_lora_adapter(tiny_model_dir, tmp_path / "lora")
    adapter = register_adapter(settings, "tiny-w-merge", source, {"base_model": "tiny-random-llama"})
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(adapter.path)  # as the trainer saves it
    out = merge_adapter(adapter, tiny_model_dir, tmp_path / "merged")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(str(out))(input_ids=ids).logits
        peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter.path))
        expected = peft(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert not torch.allclose(merged, base, atol=1e-4)  # the adapter is in it
