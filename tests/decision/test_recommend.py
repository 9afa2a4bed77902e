"""The recommendation rule: the cheapest qualifying candidate, the closest when none qualifies (with what
would help), unknown costs, no results; and the sentence a person reads."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dataflywheel.decision.recommend import MetricScore, metric_scores, recommend, validation_curve
from dataflywheel.decision.schema import CostBasis, EvalCost, RecommendationRule, RecommendationStatus

RULE = RecommendationRule(metric="function_name_accuracy", min_ratio=0.95, teacher_value=1.0)
TEACHER = 0.66  # per 1,000 requests


def score(candidate: str, eval_type: str, mean: float, low: float, high: float, n: int = 30) -> MetricScore:
    return MetricScore(candidate, eval_type, mean, low, high, n)


def cost(candidate: str, eval_type: str, per_1k: float | None, reason: str | None = None) -> EvalCost:
    return EvalCost(
        candidate=candidate,
        eval_type=eval_type,
        requests=30,
        mean_prompt_tokens=1000.0,
        mean_completion_tokens=20.0,
        latency_p50_s=0.2,
        latency_p95_s=0.5,
        throughput_rps=3.0,
        cost_per_1k=per_1k,
        basis=CostBasis.TOKENS if per_1k is not None else CostBasis.UNKNOWN,
        monthly_cost=None,
        saving_vs_teacher=None if per_1k is None else 1 - per_1k / TEACHER,
        unknown_reason=reason if per_1k is None else None,
    )


def test_the_cheapest_qualifying_candidate_is_named_in_one_sentence() -> None:
    scores = [
        score("smollm2-135m-instruct", "base", 0.10, 0.02, 0.20),  # cheapest, far from qualifying
        score("smollm2-135m-instruct", "customized", 0.97, 0.955, 0.99),
        score("qwen-1.5b", "customized", 0.99, 0.97, 1.0),  # qualifies better, costs more
    ]
    costs = [
        cost("smollm2-135m-instruct", "base", 0.01),
        cost("smollm2-135m-instruct", "customized", 0.0198),
        cost("qwen-1.5b", "customized", 0.05),
    ]
    rec = recommend(RULE, scores, costs, teacher_cost_per_1k=TEACHER)
    assert rec.status is RecommendationStatus.RECOMMENDED
    assert (rec.candidate, rec.eval_type, rec.value, rec.ci_low, rec.gap) == (
        "smollm2-135m-instruct",
        "customized",
        0.97,
        0.955,
        0.0,
    )
    assert rec.cost_per_1k == 0.0198 and rec.saving_vs_teacher == 1 - 0.0198 / TEACHER
    assert rec.sentence == (
        "Use smollm2-135m-instruct customized: function-name accuracy 0.97 [0.95, 0.99] reaches 0.95 x the logged "
        "model's at $0.020 per 1,000 requests, 97% less."
    )
    assert rec.advice is None and rec.rule == RULE


def test_a_known_cost_wins_over_an_unknown_one() -> None:
    scores = [score("a", "customized", 0.99, 0.98, 1.0), score("b", "customized", 0.97, 0.96, 0.99)]
    rec = recommend(RULE, scores, [cost("a", "customized", None, "no price set: a"), cost("b", "customized", 0.3)])
    assert rec.candidate == "b" and "at $0.30 per 1,000 requests" in rec.sentence


def test_with_every_cost_unknown_the_higher_lower_bound_wins_and_the_sentence_says_so() -> None:
    scores = [score("a", "customized", 0.97, 0.955, 0.99), score("b", "icl", 0.99, 0.98, 1.0)]
    reason = "no price set: candidates[b].price_per_gpu_hour or its per-token prices"
    rec = recommend(RULE, scores, [cost("a", "customized", None, "x"), cost("b", "icl", None, reason)])
    assert (rec.candidate, rec.eval_type, rec.cost_per_1k) == ("b", "icl", None)
    assert rec.sentence.endswith(f"; its cost is unknown ({reason}), so it was chosen by the highest lower bound.")
    # No cost rows at all (the cost could not be computed): the same rule.
    assert recommend(RULE, scores).candidate == "b"


def test_an_unknown_teacher_cost_is_said_instead_of_a_saving() -> None:
    rec = recommend(
        RULE,
        [score("a", "base", 1.0, 1.0, 1.0)],
        [cost("a", "base", 0.5).model_copy(update={"saving_vs_teacher": None})],
        teacher_cost_per_1k=None,
    )
    assert rec.sentence.endswith(
        "at $0.50 per 1,000 requests (the logged model's cost is unknown: set the teacher prices to compare)."
    )


def test_when_none_qualifies_the_closest_is_named_with_its_gap_and_what_would_help() -> None:
    scores = [
        score("m", "base", 0.07, 0.0, 0.17),
        score("m", "icl", 0.07, 0.0, 0.17),
        score("m", "customized", 0.57, 0.40, 0.73),
    ]
    rec = recommend(
        RULE,
        scores,
        [cost("m", k, 0.02) for k in ("base", "icl", "customized")],
        curves={"m": [0.14, 0.29, 0.50, 0.64]},
    )
    assert rec.status is RecommendationStatus.NONE_QUALIFIES
    assert (rec.candidate, rec.eval_type, rec.ci_low) == ("m", "customized", 0.40)
    assert rec.gap is not None and abs(rec.gap - 0.55) < 1e-12
    assert rec.sentence == (
        "No candidate reaches 0.95 x the logged model's function-name accuracy yet: the closest, m customized, has "
        "0.57 [0.40, 0.73], its lower bound 0.55 short of 0.95."
    )
    assert rec.advice == (
        "Its validation function-name accuracy was still rising at the last epoch (0.50 to 0.64): more logged "
        "records to train on (or more epochs) should help."
    )


def test_advice_follows_what_the_job_saw() -> None:
    # Interval reaching the threshold at the top: more eval samples would tell; a curve that peaked earlier: no
    # advice about more records.
    wide = recommend(RULE, [score("m", "customized", 0.9, 0.8, 0.97, n=20)], curves={"m": [0.5, 0.9, 0.8]})
    assert wide.advice == (
        "Its interval reaches 0.95 at the top (0.97): a larger eval set (data_split.eval_size, 20 samples now) "
        "would tell."
    )
    # No customized result for the candidate: fine-tuning is what is left.
    base_only = recommend(RULE, [score("remote", "base", 0.5, 0.4, 0.6)])
    assert base_only.advice == "Fine-tuning it should help: it has no customized result."
    plain = recommend(RULE, [score("m", "customized", 0.5, 0.4, 0.6)], curves={"m": [0.6, 0.5]})
    assert plain.advice is not None and plain.advice.startswith("A larger candidate")


def test_no_results_say_so() -> None:
    rec = recommend(RULE, [], [cost("m", "base", 0.1)])
    assert rec.status is RecommendationStatus.NO_RESULTS
    assert rec.candidate is None and rec.value is None and rec.gap is None
    assert rec.sentence == "No evaluation finished, so there is nothing to recommend."


def test_a_custom_rule_changes_the_metric_and_the_threshold() -> None:
    rule = RecommendationRule(metric="function_name_and_args_accuracy", min_ratio=0.5, teacher_value=1.0)
    rec = recommend(
        rule, [score("m", "customized", 0.6, 0.52, 0.7)], [cost("m", "customized", 0.02)], teacher_cost_per_1k=TEACHER
    )
    assert rec.status is RecommendationStatus.RECOMMENDED
    assert "exact-call accuracy 0.60 [0.52, 0.70] reaches 0.5 x the logged model's" in rec.sentence


def test_metric_scores_read_a_job_result_with_the_stored_eval_type_names() -> None:
    def agg(mean: float | None, n: int) -> dict[str, Any]:
        return {"mean": mean, "ci_low": mean, "ci_high": mean, "n": n}

    result = {
        "m": {
            "base-eval": {"metrics": {"function_name_accuracy": agg(0.5, 10)}},
            "customized-eval": {"metrics": {"function_name_accuracy": agg(0.9, 10)}},
            "icl-eval": {"metrics": {"function_name_accuracy": agg(None, 0)}},  # not measured: left out
        }
    }
    assert metric_scores(result, "function_name_accuracy") == [
        MetricScore("m", "base", 0.5, 0.5, 0.5, 10),
        MetricScore("m", "customized", 0.9, 0.9, 0.9, 10),
    ]
    assert metric_scores(result, "call_recall") == []
    curve = {
        "curve": [
            {"epoch": 1, "val_function_name_accuracy": 0.2},
            {"epoch": 2},
            {"epoch": 3, "val_function_name_accuracy": 0.4},
        ]
    }
    assert validation_curve(curve) == [0.2, 0.4] and validation_curve(None) == []


option = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["base", "icl", "customized"]),
    st.floats(0, 1),
    st.floats(0, 0.2),
    st.one_of(st.none(), st.floats(0, 10)),
)


@given(st.lists(option, min_size=1, max_size=9, unique_by=lambda o: (o[0], o[1])))
def test_the_recommended_option_qualifies_and_no_qualifying_known_cost_is_cheaper(options: list[Any]) -> None:
    scores = [score(c, k, low + width / 2, low, min(1.0, low + width)) for c, k, low, width, _ in options]
    costs = [cost(c, k, price, "no price") for c, k, _, _, price in options]
    rec = recommend(RULE, scores, costs)
    qualifying = [(s, c) for s, c in zip(scores, costs, strict=True) if s.ci_low >= 0.95]
    if not qualifying:
        assert rec.status is RecommendationStatus.NONE_QUALIFIES
        assert rec.ci_low == max(s.ci_low for s in scores) and rec.gap == 0.95 - rec.ci_low
        return
    assert rec.status is RecommendationStatus.RECOMMENDED and rec.ci_low is not None and rec.ci_low >= 0.95
    known = [c.cost_per_1k for _, c in qualifying if c.cost_per_1k is not None]
    if known:
        assert rec.cost_per_1k == min(known)
    else:
        assert rec.ci_low == max(s.ci_low for s, _ in qualifying)
