"""The completion-only loss, and the shared-prefix computation against the plain one."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from dataflywheel.models.codec import ToolCallCodec
from dataflywheel.training.examples import tokenize_rows
from dataflywheel.training.loss import Example, batch_loss, shared_prefix_len
from tests.training import routing_rows

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir: str) -> Any:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    # Non-zero B matrices, no dropout: the two computations must agree exactly up to float rounding.
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(base, config)
    model.train()
    return model


@pytest.fixture(scope="module")
def examples(tiny_tokenizer: Any) -> list[Example]:
    rows = routing_rows(5, seed=3)
    # A multi-turn row and a text answer: suffixes of different shapes and lengths.
    rows.append(
        {
            "messages": [
                *rows[0]["messages"][:2],
                {"role": "assistant", "content": "", "tool_calls": rows[0]["messages"][2]["tool_calls"]},
                {"role": "tool", "content": "done"},
                {"role": "assistant", "content": "Your order is on its way."},
            ],
            "tools": rows[0]["tools"],
        }
    )
    tokenized = tokenize_rows(rows, ToolCallCodec(tiny_tokenizer), max_seq_length=4096)
    assert not tokenized.skipped
    return tokenized.examples


def _grads(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _run(model: Any, rows: list[Example], min_prefix: int | None) -> tuple[float, dict[str, torch.Tensor], int]:
    model.zero_grad(set_to_none=True)
    result = batch_loss(model, rows, pad_id=0, device=CPU, min_prefix_tokens=min_prefix)
    (result.loss_sum / result.target_tokens).backward()
    return float(result.loss_sum), _grads(model), result.prefix_tokens


def test_plain_loss_is_the_sum_of_each_rows_completion_cross_entropy(lora_model: Any, examples: list[Example]) -> None:
    with torch.no_grad():
        ours = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=None)
        expected = 0.0
        for e in examples:  # one row alone, no padding, HF's own shifted loss over the completion only
            ids = torch.tensor([e.prompt + e.completion])
            labels = torch.tensor([[-100] * len(e.prompt) + list(e.completion)])
            out = lora_model(input_ids=ids, labels=labels)
            expected += float(out.loss) * len(e.completion)
    assert ours.prefix_tokens == 0
    assert ours.target_tokens == sum(len(e.completion) for e in examples)
    assert float(ours.loss_sum) == pytest.approx(expected, rel=1e-5)


def test_shared_prefix_gives_the_plain_loss_and_gradients(lora_model: Any, examples: list[Example]) -> None:
    plain_loss, plain_grads, _ = _run(lora_model, examples, None)
    shared_loss, shared_grads, prefix = _run(lora_model, examples, 32)
    assert prefix > 500  # the tools block and the system prompt are shared
    assert shared_loss == pytest.approx(plain_loss, rel=1e-5)
    assert plain_grads.keys() == shared_grads.keys() and len(plain_grads) > 0
    for name, grad in plain_grads.items():
        scale = float(grad.abs().max()) or 1.0
        assert torch.allclose(shared_grads[name], grad, atol=1e-4 * scale, rtol=1e-4), name


def test_shared_prefix_computes_far_fewer_tokens(lora_model: Any, examples: list[Example]) -> None:
    with torch.no_grad():
        plain = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=None)
        shared = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=32)
    assert shared.computed_tokens * 2 < plain.computed_tokens


def test_short_shared_prefix_falls_back_to_the_plain_computation(lora_model: Any, examples: list[Example]) -> None:
    with torch.no_grad():
        result = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=100_000)
        single = batch_loss(lora_model, examples[:1], pad_id=0, device=CPU, min_prefix_tokens=1)
    assert result.prefix_tokens == 0
    assert single.prefix_tokens == 0


@pytest.mark.parametrize(
    ("prompts", "expected"),
    [
        ([(1, 2, 3, 4), (1, 2, 3, 5)], 3),
        ([(1, 2, 3), (1, 2, 3)], 2),  # one prompt token stays in each suffix
        ([(1, 2), (3, 4)], 0),
        ([(7,), (7, 8)], 0),
        ([(1, 2, 3, 4, 5)], 4),
    ],
)
def test_shared_prefix_len(prompts: list[tuple[int, ...]], expected: int) -> None:
    rows = [Example(i, p, (9,)) for i, p in enumerate(prompts)]
    assert shared_prefix_len(rows) == expected
    assert shared_prefix_len([]) == 0


def test_the_decision_head_ends_with_the_tool_name_or_is_a_text_answers_first_token(
    tiny_tokenizer: Any, examples: list[Example]
) -> None:
    rows = routing_rows(5, seed=3)
    for row, example in zip(rows, examples, strict=False):
        name = row["messages"][-1]["tool_calls"][0]["function"]["name"]
        head_text = tiny_tokenizer.decode(list(example.completion[: example.head]))
        assert head_text.rstrip('"').endswith(name), head_text
        assert name not in tiny_tokenizer.decode(list(example.completion[: example.head - 1]))
    assert examples[-1].head == 1  # the text answer


def test_decision_weight_adds_the_weighted_head_loss_alike_in_both_computations(
    lora_model: Any, examples: list[Example]
) -> None:
    with torch.no_grad():
        plain = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=None)
        heads = [Example(e.index, e.prompt, e.completion[: e.head]) for e in examples]
        head_loss = float(batch_loss(lora_model, heads, pad_id=0, device=CPU, min_prefix_tokens=None).loss_sum)
        weighted = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=None, decision_weight=4)
        shared = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=32, decision_weight=4)
    assert float(weighted.loss_sum) == pytest.approx(float(plain.loss_sum) + 3 * head_loss, rel=1e-4)
    assert float(shared.loss_sum) == pytest.approx(float(weighted.loss_sum), rel=1e-4)
    assert weighted.target_weight == plain.target_tokens + 3 * sum(e.head for e in examples)


def test_without_prefix_gradients_the_loss_is_the_same_and_only_the_suffix_trains(
    lora_model: Any, examples: list[Example]
) -> None:
    full_loss, full_grads, _ = _run(lora_model, examples, 32)
    lora_model.zero_grad(set_to_none=True)
    result = batch_loss(lora_model, examples, pad_id=0, device=CPU, min_prefix_tokens=32, prefix_gradients=False)
    (result.loss_sum / result.target_tokens).backward()
    suffix_grads = _grads(lora_model)
    assert result.prefix_tokens > 500
    assert float(result.loss_sum) == pytest.approx(full_loss, rel=1e-5)  # the same forward pass
    assert suffix_grads.keys() == full_grads.keys()
    # The prefix's share of the gradient is gone: the two differ, by more than rounding.
    differing = [n for n, g in full_grads.items() if not torch.allclose(suffix_grads[n], g, rtol=1e-3, atol=1e-6)]
    assert len(differing) > len(full_grads) // 2
