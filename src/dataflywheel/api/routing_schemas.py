"""Shapes of the promotion, rollback, route and live-agreement routes (``/api/jobs/{id}/promote``,
``/api/workloads/{id}/...``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataflywheel.api.schemas import NAME_MAX_LENGTH, NO_NUL, RecordId, request_config
from dataflywheel.jobs.routes import RouteAction, RouteEventRecord, RouteMode
from dataflywheel.projection import project

Text = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]


class PromoteRequest(BaseModel):
    """Which candidate of the job takes part in its workload's traffic, and how."""

    model_config = request_config(
        {"mode": "canary", "canary_share": 0.1, "base_url": "http://127.0.0.1:8001/v1"},
        {
            "candidate": "smollm2-135m-instruct",
            "mode": "shadow",
            "base_url": "http://127.0.0.1:8001/v1",
            "override": True,
            "reason": "measure it on live traffic first",
        },
    )

    mode: RouteMode = Field(description="shadow (both answer, the big model's answer is returned), canary, full.")
    candidate: str | None = Field(
        None,
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        pattern=NO_NUL,
        description="The candidate as the job names it; default: the recommended one.",
    )
    eval_type: str | None = Field(
        None,
        pattern=r"^(base|icl|customized)(-eval)?$",
        description="Which of its models: base, icl or customized; default: the recommended one.",
    )
    canary_share: float | None = Field(
        None, gt=0, le=1, description="canary: the share of requests the candidate answers (0 < share <= 1)."
    )
    base_url: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        pattern=r"^https?://[^\x00]+$",
        description="Where the candidate is served (OpenAI-compatible, ending in /v1); default: its configured "
        "endpoint.",
    )
    model: str | None = Field(
        None,
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        pattern=NO_NUL,
        description="The model name to ask that server for; default: the customized candidate's adapter, else the "
        "candidate's name.",
    )
    override: bool = Field(False, description="Promote although the job's recommendation does not pass (recorded).")
    reason: Text = Field("", description="Why: required with an override; recorded with the change.")

    @model_validator(mode="after")
    def _consistent(self) -> PromoteRequest:
        if self.mode is RouteMode.CANARY and self.canary_share is None:
            raise ValueError("canary_share: a canary needs the share of requests the candidate answers")
        if self.mode is not RouteMode.CANARY and self.canary_share is not None:
            raise ValueError(f"canary_share: only a canary has a share (mode is {self.mode.value})")
        if self.override and not self.reason.strip():
            raise ValueError("reason: an override needs a reason (it is recorded)")
        return self


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: RecordId | None = Field(None, description="Only this client's route; default: every client's.")
    reason: Text = Field("", description="Why (recorded).")


class RouteEventPublic(BaseModel):
    """One change of a workload's route (the newest is the current route)."""

    id: int
    workload_id: str
    client_id: str
    ts: datetime
    action: RouteAction
    mode: RouteMode | None
    canary_share: float | None
    base_url: str | None
    model: str | None
    job_id: str | None
    candidate: str | None
    eval_type: str | None
    override: bool
    reason: str
    active: bool = Field(description="Whether a candidate takes part in traffic after this change.")

    @classmethod
    def of(cls, record: RouteEventRecord) -> RouteEventPublic:
        return project(
            cls,
            record,
            base_url=record.target.base_url if record.target else None,
            model=record.target.model if record.target else None,
        )


class _Projected(BaseModel):
    """A response model whose fields are those of the record it shows (:func:`project`)."""

    @classmethod
    def of(cls, source: object) -> Self:
        return project(cls, source)


class GatePublic(_Projected):
    """A :class:`~dataflywheel.promotion.gate.GateVerdict`."""

    passes: bool
    reason: str
    recommended_candidate: str | None
    recommended_eval_type: str | None


class PromotePublic(BaseModel):
    event: RouteEventPublic
    gate: GatePublic


class RouteEventsPublic(BaseModel):
    data: list[RouteEventPublic]


class RoutePublic(BaseModel):
    """A workload's current routes (one per client that has one) and its history, newest first."""

    current: list[RouteEventPublic]
    history: list[RouteEventPublic]


class DayAgreementPublic(_Projected):
    """A :class:`~dataflywheel.promotion.agreement.DayAgreement`."""

    day: str = Field(description="UTC date.")
    model: str = Field(description="The candidate model compared.")
    calls: int = Field(description="Logged calls where the candidate was asked.")
    answered_by_candidate: int
    compared: int = Field(description="Calls both models answered.")
    agreed: int = Field(description="Of those, calls where they called the same functions in the same order.")
    candidate_errors: int
    rate: float | None = Field(description="agreed / compared (null when nothing was compared).")


class AgreementPublic(BaseModel):
    """The candidate's live function-name agreement with the big model, per day (oldest first)."""

    workload_id: str
    client_id: str
    data: list[DayAgreementPublic]
