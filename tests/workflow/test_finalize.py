"""The finalize stage stores what the job means next to its scores: ``cost``, ``latency`` and the
``recommendation`` (real evals against a stand-in model, the real stage; no model and no training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.decision.schema import CostBasis, CostReport, LatencyRow, Recommendation, TokenSource
from dataflywheel.jobs import JobStore
from dataflywheel.settings import Settings, load_settings
from dataflywheel.workflow.stages import eval_dir
from tests.helpers.finished_job import EvalPlan, make_finished_job

CANDIDATE = "small-model"
TEACHER = {"name": "big-70b", "price_per_1m_input_tokens": 0.88, "price_per_1m_output_tokens": 0.88}
PLANS = {
    "base-eval": EvalPlan(right=0, prompt_tokens=900, latency_s=0.2),
    "icl-eval": EvalPlan(right=2, prompt_tokens=1900, latency_s=0.4),
    "customized-eval": EvalPlan(right=10, prompt_tokens=900, latency_s=0.3),
}


def settings_with(tmp_path: Path, **changes: Any) -> Settings:
    return load_settings(home=tmp_path / "home", job_store={"url": f"sqlite:///{tmp_path / 'jobs.db'}"}, **changes)


def finished(settings: Settings, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The finished job's result and its eval summaries (as the eval stages stored them)."""
    with JobStore.from_settings(settings) as store:
        job = make_finished_job(store, settings, CANDIDATE, kwargs.pop("plans", PLANS), **kwargs)
        summaries = {s.key.split(":")[0]: s.output["summary"] for s in store.list_stages(job.id) if ":" in s.key}
    assert job.result is not None
    return job.result, summaries


def test_finalize_stores_cost_latency_and_the_recommendation(tmp_path: Path) -> None:
    candidate = {
        "name": CANDIDATE,
        "source": "tiny-random-llama",
        "price_per_1m_input_tokens": 0.02,
        "price_per_1m_output_tokens": 0.04,
    }
    result, summaries = finished(settings_with(tmp_path, candidates=[candidate], teacher=TEACHER))
    assert set(result) == {"candidates", "training", "judge", "cost", "latency", "recommendation"}
    assert result["judge"]["status"] == "skipped" and result["judge"]["model"] is None  # none configured
    json.dumps(result)  # stored as JSON
    cost = CostReport.model_validate(result["cost"])

    # The logged model: its records' usage (1000 + 10 i prompt tokens, i < 10; 20 completion) at 0.88 per 1M.
    teacher = cost.teacher
    assert (teacher.model, teacher.tokens_from, teacher.estimated) == ("big-70b", TokenSource.LOGGED_USAGE, False)
    assert (teacher.mean_prompt_tokens, teacher.mean_completion_tokens) == (1045.0, 20.0)
    assert teacher.cost_per_1k == pytest.approx((1045 + 20) * 0.88 / 1000)
    # 1,001 records over 10 days: 100 a day, 3,000 a month.
    assert cost.traffic.records_per_day == pytest.approx(100.0) and cost.traffic.records == 1001
    assert teacher.monthly_cost == pytest.approx(teacher.cost_per_1k * 3)

    rows = {c.eval_type: c for c in cost.evals}
    assert set(rows) == {"base", "icl", "customized"}
    for kind, plan in PLANS.items():
        row = rows[kind.removesuffix("-eval")]
        per_1k = (plan.prompt_tokens * 0.02 + plan.completion_tokens * 0.04) / 1000
        assert row.basis is CostBasis.TOKENS and row.cost_per_1k == pytest.approx(per_1k)
        assert row.saving_vs_teacher == pytest.approx(1 - per_1k / teacher.cost_per_1k)
        assert row.monthly_cost == pytest.approx(per_1k * 3)
        assert row.requests == 10 and row.latency_p50_s == row.latency_p95_s == plan.latency_s
        assert row.throughput_rps == pytest.approx(10 / summaries[kind]["wall_s"])
    assert rows["icl"].cost_per_1k > rows["base"].cost_per_1k  # the few-shot examples' longer prompts
    assert cost.judge is None and cost.notes == []

    latency = [LatencyRow.model_validate(r) for r in result["latency"]]
    assert {(r.eval_type, r.p50_s, r.mean_s) for r in latency} == {
        ("base", 0.2, 0.2),
        ("icl", 0.4, 0.4),
        ("customized", 0.3, 0.3),
    }

    rec = Recommendation.model_validate(result["recommendation"])
    assert (rec.status.value, rec.candidate, rec.eval_type, rec.value) == ("recommended", CANDIDATE, "customized", 1.0)
    assert rec.sentence.startswith(
        f"Use {CANDIDATE} customized: function-name accuracy 1.00 [1.00, 1.00] reaches "
        "0.95 x the logged model's at $0.019 per 1,000 requests, 98% less"
    )


@pytest.mark.jobs
def test_an_unpriced_candidate_costs_unknown_and_unlogged_tokens_are_counted(tmp_path: Path) -> None:
    """No candidate price and records without usage: the teacher's tokens are counted with the shipped
    SmolLM2 tokenizer (marked estimated), the candidate's cost is unknown, never 0."""
    result, _ = finished(settings_with(tmp_path, teacher=TEACHER), usage=False, plans={"base-eval": PLANS["base-eval"]})
    cost = CostReport.model_validate(result["cost"])
    teacher = cost.teacher
    assert teacher.tokens_from is TokenSource.TOKENIZER and teacher.estimated
    assert teacher.mean_prompt_tokens is not None and teacher.mean_completion_tokens is not None
    # The prompt renders the three tool schemas, the system prompt and the question: more tokens than the
    # schemas' JSON alone, fewer than its characters.
    from transformers import AutoTokenizer

    from dataflywheel.models.registry import smollm2_tokenizer_dir
    from tests.factories import TOOLS

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(tmp_path / "home" / "models"))
    schemas = json.dumps(TOOLS)
    assert len(tokenizer.encode(schemas, add_special_tokens=False)) < teacher.mean_prompt_tokens < len(schemas)
    assert 5 < teacher.mean_completion_tokens < 60  # one <tool_call> block with a short query
    assert teacher.cost_per_1k == pytest.approx(
        (teacher.mean_prompt_tokens + teacher.mean_completion_tokens) * 0.88 / 1000
    )
    (row,) = cost.evals
    assert (row.cost_per_1k, row.monthly_cost, row.saving_vs_teacher) == (None, None, None)
    assert row.basis is CostBasis.UNKNOWN
    assert row.unknown_reason == f"no price set: candidates[{CANDIDATE}].price_per_gpu_hour or its per-token prices"
    assert row.latency_p50_s == 0.2  # latency is measured whatever the price


def test_a_cost_that_cannot_be_computed_never_fails_the_job(tmp_path: Path) -> None:
    # Records without usage and a tokenizer that does not exist: the teacher's tokens are unknown, with why.
    settings = settings_with(tmp_path, teacher={**TEACHER, "tokenizer": str(tmp_path / "no-tokenizer")})
    result, _ = finished(settings, usage=False, plans={"customized-eval": PLANS["customized-eval"]})
    teacher = CostReport.model_validate(result["cost"]).teacher
    assert teacher.tokens_from is TokenSource.UNKNOWN and teacher.cost_per_1k is None
    assert teacher.unknown_reason is not None and "no tokenizer could count them" in teacher.unknown_reason
    assert Recommendation.model_validate(result["recommendation"]).candidate == CANDIDATE


def test_a_corrupt_sample_leaves_the_cost_unknown_with_the_reason(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, teacher=TEACHER)

    def corrupt(job_id: str) -> None:  # a latency that is not a number
        samples = eval_dir(settings, job_id, CANDIDATE, "base-eval") / "samples.jsonl"
        first, *rest = samples.read_text().splitlines()
        samples.write_text("\n".join([json.dumps(json.loads(first) | {"latency_s": "fast"}), *rest]) + "\n")

    result, _ = finished(settings, plans={"base-eval": PLANS["base-eval"]}, before_finalize=corrupt)
    cost = CostReport.model_validate(result["cost"])
    assert cost.evals == [] and cost.teacher.cost_per_1k is None and result["latency"] == []
    assert len(cost.notes) == 1 and cost.notes[0].startswith("the cost could not be computed: ValueError")
    assert cost.teacher.unknown_reason == cost.notes[0]
    assert result["candidates"][CANDIDATE]["base-eval"]["samples"] == 10  # the scores stand
    assert Recommendation.model_validate(result["recommendation"]).status.value == "none_qualifies"


def test_a_job_overrides_the_recommendation_rule(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, teacher=TEACHER)
    config = {"recommendation_config": {"min_ratio": 0.1, "metric": "call_recall"}}
    plans = {"icl-eval": PLANS["icl-eval"]}  # 2 of 10 right
    result, _ = finished(settings, plans=plans, config=config)
    rec = Recommendation.model_validate(result["recommendation"])
    assert (rec.rule.metric, rec.rule.min_ratio, rec.rule.teacher_value) == ("call_recall", 0.1, 1.0)
    (tmp_path / "b").mkdir()
    default, _ = finished(settings_with(tmp_path / "b", teacher=TEACHER), plans=plans)
    assert default["recommendation"]["rule"]["metric"] == "function_name_accuracy"
    assert default["recommendation"]["rule"]["min_ratio"] == 0.95
