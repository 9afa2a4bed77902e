"""Promote a finished job's candidate into the logging proxy's route of its workload, and roll a workload's
route back to the big model. Each change is one stored route event (:mod:`dataflywheel.jobs.routes`); the
proxy reads the newest within ``proxy.route_ttl_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dataflywheel.decision.schema import EVAL_TYPES, eval_result_key, eval_type_name, read_stored
from dataflywheel.jobs import JobKind, JobStatus, JobStore
from dataflywheel.jobs.records import CandidateRunDetail, JobDetail
from dataflywheel.jobs.routes import RouteAction, RouteEventRecord, RouteMode, RouteTarget
from dataflywheel.promotion.errors import (
    GateClosedError,
    JobNotPromotableError,
    NoActiveRouteError,
    PromotionInputError,
)
from dataflywheel.promotion.gate import GateVerdict, check_gate
from dataflywheel.settings import Settings


@dataclass(frozen=True, slots=True)
class PromotionRequest:
    """What to promote and how. ``candidate``/``eval_type`` default to the job's recommendation; ``model`` to
    the customized candidate's adapter (else the candidate's model name); ``base_url`` to the candidate's
    configured endpoint."""

    mode: RouteMode
    candidate: str | None = None
    eval_type: str | None = None
    canary_share: float | None = None
    base_url: str | None = None
    model: str | None = None
    override: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Promotion:
    event: RouteEventRecord
    gate: GateVerdict


def _run(detail: JobDetail, candidate: str) -> CandidateRunDetail:
    for run in detail.candidates:
        if run.candidate == candidate:
            return run
    names = ", ".join(r.candidate for r in detail.candidates) or "none"
    raise PromotionInputError(f"candidate: the job has no candidate {candidate!r} (it has: {names})")


def _served_model(settings: Settings, run: CandidateRunDetail, eval_type: str, model: str | None) -> str:
    if model:
        return model
    if eval_type == "customized":
        custom = run.customization
        if custom is None or not custom.adapter_name:
            raise PromotionInputError(f"eval_type: candidate {run.candidate!r} has no customized adapter to serve")
        return custom.adapter_name
    configured = next((c for c in settings.candidates if c.name == run.candidate), None)
    return (configured.model_id if configured is not None and configured.model_id else None) or run.candidate


def _base_url(settings: Settings, candidate: str, base_url: str | None) -> str:
    url = base_url
    if url is None:
        configured = next((c for c in settings.candidates if c.name == candidate), None)
        url = configured.base_url if configured is not None and configured.engine == "openai" else None
    if not url:
        raise PromotionInputError(
            f"base_url: where is {candidate!r} served? Give the base URL of its OpenAI-compatible server "
            "(e.g. flywheel serve-model ... --port 8001: http://127.0.0.1:8001/v1)"
        )
    if not url.startswith(("http://", "https://")):
        raise PromotionInputError(f"base_url: expected an http(s) URL ending in /v1, got {url!r}")
    return url


def promote(store: JobStore, settings: Settings, job_id: str, request: PromotionRequest) -> Promotion:
    """Make the job's candidate the route of its workload (and client), or raise: :class:`JobNotFoundError`
    (no such job), :class:`JobNotPromotableError` (not a completed flywheel job), :class:`GateClosedError`
    (the recommendation does not pass and no override), :class:`PromotionInputError` (bad values)."""
    detail = store.job_detail(job_id)
    job = detail.job
    if job.kind is not JobKind.FLYWHEEL or job.status is not JobStatus.COMPLETED:
        raise JobNotPromotableError(
            f"job {job_id} is a {job.kind.value} job in status {job.status.value}: only a completed flywheel job "
            "can be promoted"
        )
    recommendation = read_stored(job.result).recommendation
    candidate = request.candidate or (recommendation.candidate if recommendation is not None else None)
    if not candidate:
        raise PromotionInputError("candidate: the job recommends none; name the candidate to promote")
    run = _run(detail, candidate)
    eval_type = request.eval_type or (
        recommendation.eval_type
        if recommendation is not None and recommendation.candidate == candidate and recommendation.eval_type
        else ("customized" if run.customization is not None and run.customization.adapter_name else "base")
    )
    eval_type = eval_type_name(eval_type)
    if eval_type not in EVAL_TYPES:
        raise PromotionInputError(f"eval_type: expected one of {', '.join(EVAL_TYPES)}, got {eval_type!r}")
    if not any(e.eval_type == eval_result_key(eval_type) for e in run.evaluations):
        raise PromotionInputError(f"eval_type: candidate {candidate!r} has no {eval_type} eval in job {job_id}")
    if request.mode is RouteMode.CANARY and request.canary_share is None:
        raise PromotionInputError("canary_share: a canary needs the share of requests the candidate answers")
    gate = check_gate(recommendation, candidate, eval_type)
    if not gate.passes and not request.override:
        raise GateClosedError(
            f"job {job_id}: the gate does not pass: {gate.reason}; promote with an override and a reason"
        )
    if request.override and not request.reason.strip():
        raise PromotionInputError("reason: an override needs a reason (it is recorded)")
    target = RouteTarget(
        _base_url(settings, candidate, request.base_url), _served_model(settings, run, eval_type, request.model)
    )
    event = store.add_route_event(
        job.workload_id,
        job.client_id,
        RouteAction.PROMOTE,
        mode=request.mode,
        canary_share=request.canary_share if request.mode is RouteMode.CANARY else None,
        target=target,
        job_id=job.id,
        candidate=candidate,
        eval_type=eval_type,
        override=not gate.passes,
        reason=request.reason.strip() or gate.reason,
    )
    return Promotion(event, gate)


def rollback(
    store: JobStore, workload_id: str, client_id: str | None = None, reason: str = ""
) -> list[RouteEventRecord]:
    """Send all traffic of a workload (of one client, or of every client it has a route for) back to the big
    model: one rollback event per route that a candidate serves. :class:`NoActiveRouteError` when none does."""
    active = [r for r in store.current_routes(workload_id) if r.active and client_id in (None, r.client_id)]
    if not active:
        who = f"workload {workload_id!r}" + (f" client {client_id!r}" if client_id else "")
        raise NoActiveRouteError(f"{who}: no candidate is promoted, nothing to roll back")
    return [
        store.add_route_event(
            r.workload_id,
            r.client_id,
            RouteAction.ROLLBACK,
            job_id=r.job_id,
            candidate=r.candidate,
            eval_type=r.eval_type,
            reason=reason.strip() or "rollback",
        )
        for r in active
    ]
