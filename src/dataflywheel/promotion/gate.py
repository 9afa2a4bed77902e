"""The promotion gate: a job's stored recommendation lets exactly its recommended candidate and eval type
through. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from dataflywheel.decision.schema import Recommendation, RecommendationStatus


@dataclass(frozen=True, slots=True)
class GateVerdict:
    passes: bool
    reason: str
    """One sentence: why it passes or not (the recommendation's own sentence included)."""
    recommended_candidate: str | None
    recommended_eval_type: str | None


def check_gate(recommendation: Recommendation | None, candidate: str, eval_type: str) -> GateVerdict:
    """Whether promoting ``candidate`` under ``eval_type`` passes the job's recommendation."""
    if recommendation is None:
        return GateVerdict(False, "the job's result has no recommendation", None, None)
    rec_candidate, rec_type = recommendation.candidate, recommendation.eval_type
    if recommendation.status is not RecommendationStatus.RECOMMENDED:
        return GateVerdict(
            False,
            f"the job recommends no candidate ({recommendation.status.value}): {recommendation.sentence}",
            rec_candidate,
            rec_type,
        )
    if (candidate, eval_type) != (rec_candidate, rec_type):
        return GateVerdict(
            False,
            f"the job recommends {rec_candidate} ({rec_type}), not {candidate} ({eval_type})",
            rec_candidate,
            rec_type,
        )
    return GateVerdict(True, recommendation.sentence, rec_candidate, rec_type)
