"""The cost model's arithmetic, by hand: per basis, unknown prices, token means, traffic, months, savings."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dataflywheel.decision.cost import (
    EvalMeasure,
    Price,
    cost_per_1k,
    eval_cost,
    format_money,
    format_saving,
    judge_cost,
    logged_usage,
    mean_tokens,
    measure_eval,
    monthly_cost,
    observed_traffic,
    saving,
    teacher_cost,
)
from dataflywheel.decision.schema import CostBasis, TokenSource, Traffic

TOKENS = Price(per_1m_input_tokens=0.88, per_1m_output_tokens=0.88, setting="teacher")
HOURLY = Price(per_gpu_hour=0.80, setting="candidates[m]")
NO_PRICE = Price(setting="candidates[m].price_per_gpu_hour or its per-token prices")
TRAFFIC = Traffic(records=1001, first=None, last=None, records_per_day=500.0)


def sample(prompt: int | None, completion: int, latency: float, error: str | None = None) -> dict[str, Any]:
    usage = None if prompt is None else {"prompt_tokens": prompt, "completion_tokens": completion}
    return {"usage": usage, "latency_s": latency, "error": error}


# ---- cost per basis ----------------------------------------------------------------------------------------
def test_tokens_basis_is_the_mean_tokens_times_the_prices() -> None:
    # 1,200 prompt + 40 completion tokens at 0.88 per 1M each: 1,240 x 0.88 / 1e6 per request.
    costed = cost_per_1k(TOKENS, 1200.0, 40.0)
    assert costed.basis is CostBasis.TOKENS and costed.unknown_reason is None
    assert costed.cost_per_1k == pytest.approx(1.0912)
    # Different input and output prices weigh each side with its own.
    split = cost_per_1k(Price(per_1m_input_tokens=0.10, per_1m_output_tokens=0.40), 1000.0, 100.0)
    assert split.cost_per_1k == pytest.approx((1000 * 0.10 + 100 * 0.40) / 1000)


def test_gpu_hour_basis_divides_the_hourly_price_by_the_measured_throughput() -> None:
    # 2 requests/s = 7,200 requests an hour: 0.80 / 7,200 per request.
    costed = cost_per_1k(HOURLY, 500.0, 20.0, throughput_rps=2.0)
    assert costed.basis is CostBasis.GPU_HOUR
    assert costed.cost_per_1k == pytest.approx(0.80 / 7200 * 1000)


def test_a_missing_price_is_unknown_never_a_default() -> None:
    costed = cost_per_1k(NO_PRICE, 1200.0, 40.0, throughput_rps=2.0)
    assert (costed.cost_per_1k, costed.basis) == (None, CostBasis.UNKNOWN)
    assert costed.unknown_reason == "no price set: candidates[m].price_per_gpu_hour or its per-token prices"


def test_what_a_basis_needs_but_lacks_makes_it_unknown() -> None:
    assert cost_per_1k(TOKENS, None, None).cost_per_1k is None
    assert "no token counts" in (cost_per_1k(TOKENS, None, None).unknown_reason or "")
    for rate in (None, 0.0):
        hourly = cost_per_1k(HOURLY, 500.0, 20.0, throughput_rps=rate)
        assert hourly.cost_per_1k is None and "throughput" in (hourly.unknown_reason or "")


@given(
    prompt=st.floats(1, 1e5),
    completion=st.floats(0, 1e4),
    extra=st.floats(1, 1e4),
    price_in=st.floats(0.01, 100),
    price_out=st.floats(0, 100),
)
def test_longer_prompts_cost_more_and_cost_is_linear_in_tokens(
    prompt: float, completion: float, extra: float, price_in: float, price_out: float
) -> None:
    """An ICL eval's longer prompts cost more with no special case; doubling the tokens doubles the cost."""
    price = Price(per_1m_input_tokens=price_in, per_1m_output_tokens=price_out)
    base = cost_per_1k(price, prompt, completion).cost_per_1k
    icl = cost_per_1k(price, prompt + extra, completion).cost_per_1k
    double = cost_per_1k(price, 2 * prompt, 2 * completion).cost_per_1k
    assert base is not None and icl is not None and double is not None
    assert icl > base and math.isclose(double, 2 * base, rel_tol=1e-9)


# ---- what an eval measured ---------------------------------------------------------------------------------
def test_an_eval_measure_leaves_out_failed_requests_and_missing_usage() -> None:
    samples = [
        sample(1000, 10, 0.5),
        sample(1200, 30, 1.5),
        sample(0, 0, 1.0),  # the endpoint reported no usage: out of the token means, in the latency
        sample(9999, 999, 9.0, error="TimeoutError"),  # failed: out of everything
    ]
    m = measure_eval("m", "icl", samples, wall_s=2.0)
    assert m.requests == 3
    assert (m.mean_prompt_tokens, m.mean_completion_tokens) == (1100.0, 20.0)
    assert m.latency_mean_s == pytest.approx(1.0)
    assert (m.latency_p50_s, m.latency_p95_s) == (1.0, 1.5)  # nearest rank over [0.5, 1.0, 1.5]
    assert m.throughput_rps == 1.5  # 3 answered in 2 s


def test_an_eval_without_answers_or_wall_time_measures_nothing() -> None:
    empty = measure_eval("m", "base", [sample(5, 5, 1.0, error="boom")], wall_s=3.0)
    assert empty.requests == 0 and empty.throughput_rps is None and empty.mean_prompt_tokens is None
    assert empty.latency_p50_s is None
    assert measure_eval("m", "base", [sample(5, 5, 1.0)], wall_s=0.0).throughput_rps is None


def test_eval_cost_compares_with_the_teacher_and_projects_a_month() -> None:
    measure = EvalMeasure("m", "customized", 10, 1000.0, 20.0, 0.4, 0.3, 0.9, throughput_rps=4.0)
    teacher = teacher_cost("big", mean_tokens([(1200, 40)], TokenSource.LOGGED_USAGE), TOKENS, TRAFFIC)
    assert teacher.cost_per_1k == pytest.approx(1.0912) and not teacher.estimated
    assert teacher.monthly_cost == pytest.approx(1.0912 / 1000 * 500 * 30)
    row = eval_cost(measure, HOURLY, teacher, TRAFFIC)
    per_1k = 0.80 / (4.0 * 3600) * 1000
    assert row.cost_per_1k == pytest.approx(per_1k) and row.basis is CostBasis.GPU_HOUR
    assert row.monthly_cost == pytest.approx(per_1k / 1000 * 500 * 30)
    assert row.saving_vs_teacher == pytest.approx(1 - per_1k / 1.0912)
    assert (row.latency_p50_s, row.latency_p95_s, row.requests) == (0.3, 0.9, 10)
    unpriced = eval_cost(measure, NO_PRICE, teacher, TRAFFIC)
    assert (unpriced.cost_per_1k, unpriced.monthly_cost, unpriced.saving_vs_teacher) == (None, None, None)
    assert unpriced.basis is CostBasis.UNKNOWN and "no price set" in (unpriced.unknown_reason or "")


def test_monthly_cost_and_saving() -> None:
    assert monthly_cost(2.0, 500.0) == pytest.approx(30.0)  # 2 per 1,000 x 500 a day x 30 days
    assert monthly_cost(None, 500.0) is None and monthly_cost(2.0, None) is None
    assert saving(0.1, 1.0) == pytest.approx(0.9)
    assert saving(2.0, 1.0) == pytest.approx(-1.0)  # dearer than the teacher
    assert saving(None, 1.0) is None and saving(0.1, None) is None and saving(0.1, 0.0) is None


# ---- the logged model ----------------------------------------------------------------------------------------
def record(usage: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    if usage is not ...:
        response["usage"] = usage
    return {"request": {"messages": [{"role": "user", "content": "hello"}]}, "response": response}


def test_logged_usage_only_when_every_record_has_it() -> None:
    both = [
        record({"prompt_tokens": 100, "completion_tokens": 7}),
        record({"prompt_tokens": 300, "completion_tokens": 9}),
    ]
    assert logged_usage(both) == [(100, 7), (300, 9)]
    counts = mean_tokens(logged_usage(both) or [], TokenSource.LOGGED_USAGE)
    assert (counts.mean_prompt_tokens, counts.mean_completion_tokens) == (200.0, 8.0)
    assert logged_usage([*both, record(...)]) is None  # one without usage: all are counted instead
    for bad in (
        None,
        {"prompt_tokens": 0, "completion_tokens": 1},
        {"prompt_tokens": True, "completion_tokens": 1},
        {"prompt_tokens": 5, "completion_tokens": -1},
        {"prompt_tokens": "5", "completion_tokens": 1},
    ):
        assert logged_usage([both[0], record(bad)]) is None, bad
    assert logged_usage([]) is None


def test_a_teacher_without_a_price_or_without_tokens_costs_unknown() -> None:
    tokens = mean_tokens([(1200, 40)], TokenSource.TOKENIZER)
    unpriced = teacher_cost(None, tokens, Price(setting="teacher.price_per_1m_input_tokens"), TRAFFIC)
    assert unpriced.cost_per_1k is None and unpriced.monthly_cost is None and unpriced.basis is CostBasis.UNKNOWN
    assert unpriced.estimated and unpriced.tokens_from is TokenSource.TOKENIZER
    assert unpriced.mean_prompt_tokens == 1200.0  # the tokens are still reported
    assert unpriced.unknown_reason == "no price set: teacher.price_per_1m_input_tokens"
    from dataflywheel.decision.cost import TokenCounts

    uncounted = teacher_cost("big", TokenCounts.unknown("no tokenizer"), TOKENS, TRAFFIC)
    assert uncounted.cost_per_1k is None and uncounted.tokens_from is TokenSource.UNKNOWN and uncounted.estimated
    assert uncounted.unknown_reason == "its token counts are unknown: no tokenizer"


# ---- traffic -------------------------------------------------------------------------------------------------
def test_traffic_per_day_is_the_gaps_between_records_over_their_span() -> None:
    day = 86_400.0
    t = observed_traffic(3, 1_746_000_000.0, 1_746_000_000.0 + 2 * day)  # 3 records, 2 days: one a day
    assert t.records == 3 and t.records_per_day == pytest.approx(1.0)
    assert t.first == "2025-04-30T08:00:00+00:00" and t.last == "2025-05-02T08:00:00+00:00"
    assert observed_traffic(2001, 0.0, 30 * day).records_per_day == pytest.approx(2000 / 30)
    assert observed_traffic(5, 100.0, 100.0).records_per_day is None  # no span
    assert observed_traffic(1, 100.0, 100.0).records_per_day is None
    unknown = observed_traffic(0, None, None)
    assert (unknown.first, unknown.last, unknown.records_per_day) == (None, None, None)


# ---- judge and formatting ------------------------------------------------------------------------------------
def test_judge_cost_is_its_tokens_at_its_price_or_unknown() -> None:
    priced = judge_cost(2_000_000, 100_000, Price(per_1m_input_tokens=0.5, per_1m_output_tokens=1.5))
    assert priced.cost == pytest.approx(2 * 0.5 + 0.1 * 1.5)
    unknown = judge_cost(2_000_000, 100_000, Price())
    assert (unknown.prompt_tokens, unknown.completion_tokens, unknown.cost) == (2_000_000, 100_000, None)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (None, "USD", "unknown"),
        (0.0, "USD", "$0"),
        (0.0234, "USD", "$0.023"),
        (0.00043, "USD", "$0.00043"),
        (1.0912, "USD", "$1.09"),
        (1234.5, "EUR", "€1,234.50"),
        (0.5, "CHF", "0.50 CHF"),
        (-0.25, "USD", "-$0.25"),
    ],
)
def test_money_reads_naturally(amount: float | None, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text


def test_saving_reads_as_less_or_more_and_never_rounds_up_to_free() -> None:
    assert format_saving(0.97) == "97% less"
    assert format_saving(-0.2) == "20% more"
    assert format_saving(0.9996) == "99% less" and format_saving(1.0) == "100% less"
    assert format_saving(None) == "unknown"
