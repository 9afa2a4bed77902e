"""The lower layers computed once (``training/frozen.py``) against the step that runs every layer."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dataflywheel.models.codec import ToolCallCodec
from dataflywheel.training.examples import tokenize_rows
from dataflywheel.training.frozen import FrozenLayers, frozen_split
from dataflywheel.training.loss import Example, batch_loss, frozen_batch_loss, shared_prefix_len
from tests.training import routing_rows

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def upper_lora(tiny_model_dir: str) -> Any:
    """The tiny 2-layer model with LoRA on its top layer only (non-zero B: the adapter changes outputs)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        layers_to_transform=[1],
        init_lora_weights=False,
    )
    model = get_peft_model(base, config)
    model.train()
    return model


@pytest.fixture(scope="module")
def examples(tiny_tokenizer: Any) -> list[Example]:
    tokenized = tokenize_rows(routing_rows(7, seed=5), ToolCallCodec(tiny_tokenizer), max_seq_length=4096)
    assert not tokenized.skipped
    return tokenized.examples


def _grads(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _frozen(model: Any, examples: list[Example], budget: int = 1 << 30) -> FrozenLayers:
    split = frozen_split(model, [1])
    assert split == 1
    prefix = examples[0].prompt[: shared_prefix_len(examples)]
    return FrozenLayers(model, split, tuple(prefix), CPU, budget_bytes=budget)


@pytest.mark.parametrize("prefix_gradients", [True, False])
def test_frozen_lower_layers_give_the_same_loss_and_gradients(
    upper_lora: Any, examples: list[Example], prefix_gradients: bool
) -> None:
    frozen = _frozen(upper_lora, examples)
    batches = [examples[:4], examples[2:], examples[:4]]  # the third reuses cached rows only
    for rows in batches:
        upper_lora.zero_grad(set_to_none=True)
        full = batch_loss(
            upper_lora, rows, pad_id=0, device=CPU, min_prefix_tokens=1, prefix_gradients=prefix_gradients
        )
        full.loss_sum.backward()
        expected = _grads(upper_lora)
        upper_lora.zero_grad(set_to_none=True)
        ours = frozen_batch_loss(upper_lora, rows, frozen, prefix_gradients=prefix_gradients, decision_weight=1.0)
        ours.loss_sum.backward()
        got = _grads(upper_lora)
        assert float(ours.loss_sum) == pytest.approx(float(full.loss_sum), rel=1e-5)
        assert got.keys() == expected.keys() and len(got) > 0
        assert all(".layers.1." in name for name in got)
        for name, grad in expected.items():
            scale = float(grad.abs().max()) or 1.0
            assert torch.allclose(got[name], grad, atol=1e-4 * scale, rtol=1e-4), name
    assert frozen.computed_rows == len(examples)  # every row ran through the lower layer once


def test_without_prompt_gradients_the_loss_is_the_same_and_only_the_gradient_changes(
    upper_lora: Any, examples: list[Example]
) -> None:
    frozen = _frozen(upper_lora, examples)
    for rows in (examples[:4], examples[2:]):  # fresh rows, then cached ones
        upper_lora.zero_grad(set_to_none=True)
        full = frozen_batch_loss(upper_lora, rows, frozen, prefix_gradients=False, decision_weight=2.0)
        full.loss_sum.backward()
        expected = _grads(upper_lora)
        upper_lora.zero_grad(set_to_none=True)
        ours = frozen_batch_loss(
            upper_lora, rows, frozen, prefix_gradients=False, prompt_gradients=False, decision_weight=2.0
        )
        ours.loss_sum.backward()
        got = _grads(upper_lora)
        assert float(ours.loss_sum) == pytest.approx(float(full.loss_sum), rel=1e-5)
        assert ours.target_tokens == full.target_tokens
        assert got.keys() == expected.keys()
        # The queries' side still learns; the keys/values of the prompt no longer do through it.
        assert all(float(g.abs().max()) > 0 for n, g in got.items() if "q_proj.lora_B" in n)
        differs = [n for n in expected if not torch.allclose(got[n], expected[n], atol=1e-6)]
        assert any("k_proj" in n or "v_proj" in n for n in differs)


def test_rows_past_the_budget_are_recomputed_not_kept(upper_lora: Any, examples: list[Example]) -> None:
    frozen = _frozen(upper_lora, examples, budget=1)
    with torch.no_grad():
        first = frozen_batch_loss(upper_lora, examples[:3], frozen)
        again = frozen_batch_loss(upper_lora, examples[:3], frozen)
    assert float(first.loss_sum) == pytest.approx(float(again.loss_sum), rel=1e-6)
    assert frozen.computed_rows == 6


def test_the_split_needs_frozen_layers_below_the_adapter(upper_lora: Any, tiny_model_dir: str) -> None:
    from transformers import AutoModelForCausalLM

    assert frozen_split(upper_lora, None) is None  # every layer adapted
    assert frozen_split(upper_lora, [0, 1]) is None  # nothing below the first adapted layer
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert frozen_split(plain, [1]) is None  # no adapter: the lower layer's weights train


def test_a_reused_prefix_is_the_last_one_computed_until_refreshed(upper_lora: Any, examples: list[Example]) -> None:
    frozen = _frozen(upper_lora, examples)
    rows = examples[:3]

    def loss(reuse: bool, prefix_gradients: bool = False) -> float:
        with torch.no_grad():
            out = frozen_batch_loss(upper_lora, rows, frozen, prefix_gradients=prefix_gradients, reuse_prefix=reuse)
        return float(out.loss_sum)

    fresh = loss(False)
    assert frozen.upper_kv and loss(True) == pytest.approx(fresh, rel=1e-6)
    lora_b = next(p for n, p in upper_lora.named_parameters() if "layers.1.self_attn.v_proj.lora_B" in n)
    saved = lora_b.detach().clone()
    try:
        with torch.no_grad():
            lora_b.add_(0.5)  # an optimizer step that moved the adapter
        moved = loss(True, prefix_gradients=True)  # with prefix gradients nothing is reused
        stale = loss(True)
        assert moved != pytest.approx(fresh, rel=1e-4)
        assert stale != pytest.approx(moved, rel=1e-4)  # the rows attend to the old prefix
        assert loss(False) == pytest.approx(moved, rel=1e-5)  # a refresh catches up
    finally:
        with torch.no_grad():
            lora_b.copy_(saved)


def test_the_trainer_with_the_frozen_cache_trains_as_without(tiny_model_dir: str, tmp_path: Any) -> None:
    from dataflywheel.training.config import TrainConfig
    from dataflywheel.training.trainer import LoRATrainer

    rows = routing_rows(12, seed=2)
    common = {
        "epochs": 2,
        "batch_size": 4,
        "learning_rate": 1e-3,
        "layers_fraction": 0.5,
        "prefix_gradients": False,
        "select_best_epoch": False,
        "dropout": 0.0,
    }
    losses = {}
    for frozen in (False, True):
        cfg = TrainConfig(**common, frozen_cache=frozen)
        metrics = LoRATrainer(tiny_model_dir, cfg, tmp_path / f"run-{frozen}").train(rows).metrics
        losses[frozen] = [e["train_loss"] for e in metrics["epochs"]]
        assert metrics["frozen_layers"] == (1 if frozen else None)  # the lower of the 2 layers was cached
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)
    assert losses[True][1] != pytest.approx(losses[True][0], rel=1e-3)  # it trained


def test_a_sibling_cache_scores_other_rows_over_the_same_prefix(upper_lora: Any, examples: list[Example]) -> None:
    train = _frozen(upper_lora, examples[:4])
    val = train.sibling()
    held_out = examples[4:]
    assert val.covers(held_out) and val.prefix == train.prefix
    with torch.no_grad():
        full = batch_loss(upper_lora, held_out, pad_id=0, device=CPU, min_prefix_tokens=1, prefix_gradients=False)
        ours = frozen_batch_loss(upper_lora, held_out, val, prefix_gradients=False)
    assert float(ours.loss_sum) == pytest.approx(float(full.loss_sum), rel=1e-5)
    assert val.computed_rows == len(held_out) and train.computed_rows == 0  # rows kept apart
    assert not val.covers([Example(0, (1, 2), (3,))])
