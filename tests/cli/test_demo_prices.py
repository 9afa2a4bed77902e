"""``flywheel demo`` shows the cost model at example prices it labels as such, and never overrides a price the
settings have."""

from __future__ import annotations

from dataflywheel.cli.demo import EXAMPLE_MACHINE_PRICE_PER_HOUR, EXAMPLE_TEACHER_PRICE_PER_1M, example_prices
from dataflywheel.models.registry import resolve_model
from dataflywheel.settings import load_settings


def test_the_demo_sets_example_prices_where_none_is_set_and_says_so() -> None:
    settings, said = example_prices(load_settings(), "smollm2-135m-instruct", "meta/llama-3.3-70b-instruct")
    teacher = settings.teacher
    assert teacher.name == "meta/llama-3.3-70b-instruct"
    assert teacher.price_per_1m_input_tokens == teacher.price_per_1m_output_tokens == EXAMPLE_TEACHER_PRICE_PER_1M
    spec = resolve_model("smollm2-135m-instruct", settings)
    assert spec.price_per_gpu_hour == EXAMPLE_MACHINE_PRICE_PER_HOUR and spec.source == "smollm2-135m-instruct"
    assert spec.engine == "local" and spec.customizable
    assert said == [
        "the logged model (meta/llama-3.3-70b-instruct) $0.88 per 1M input and output tokens, like a hosted 70B model",
        "smollm2-135m-instruct $0.10 per hour of the machine serving it (price_per_gpu_hour; about a 2-vCPU cloud "
        "VM), divided by the throughput its evals measure",
    ]


def test_prices_from_the_settings_are_kept() -> None:
    mine = load_settings(
        teacher={"name": "gpt-x", "price_per_1m_input_tokens": 2.5, "price_per_1m_output_tokens": 10.0},
        candidates=[{"name": "m", "price_per_1m_input_tokens": 0.1, "price_per_1m_output_tokens": 0.2}],
    )
    settings, said = example_prices(mine, "m", "meta/llama-3.3-70b-instruct")
    assert said == [] and settings.teacher == mine.teacher and settings.candidates == mine.candidates
