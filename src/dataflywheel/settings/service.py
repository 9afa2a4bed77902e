"""Settings of the service: executor, API, judge, teacher, cost and the recommendation rule."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dataflywheel.settings.base import (
    Section,
    check_token_prices,
)


class ExecutorSettings(Section):
    """Where and how many job stages run."""

    kind: Literal["embedded", "celery"] = Field(
        "embedded",
        description="Where job stages run: embedded (threads of the API/CLI process) | celery (workers started "
        "with flywheel worker).",
    )
    workers: int = Field(4, ge=1, le=256, description="Stages the embedded executor runs at once.")
    model_slots: int = Field(
        2, ge=1, description="Local candidates deployed at once (each a model server using memory and cores)."
    )
    training_slots: int = Field(1, ge=1, description="LoRA trainings at once (each wants every core or a GPU).")
    compute_slots: int | None = Field(
        None, ge=1, description="Evals and trainings computing at once; null: 1 on a CPU-only machine, 4 per GPU."
    )
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (executor celery).")
    stage_attempts: int = Field(
        2,
        ge=1,
        le=10,
        description="Attempts of a stage whose owner (process, worker) died before the stage ends crashed, with "
        "the reason; it holds under Celery too.",
    )
    heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="How often a running job's driver and each running stage attempt renew their lease; also how "
        "often flywheel serve looks for orphaned jobs.",
    )
    stale_after_s: float = Field(
        60.0,
        gt=0,
        description="A job or stage whose owner has been silent this long counts as dead: it is taken over (a "
        "stage re-run, or ended crashed when no attempt is left) within this time. Several heartbeats long.",
    )
    visibility_timeout_s: float = Field(
        3600.0,
        gt=0,
        description="Celery (Redis) broker: a delivered stage task not acknowledged for this long is delivered "
        "again. Stage tasks are acknowledged when they start, so it never fires while a stage runs: a worker "
        "killed mid-stage is covered by the driver taking over its silent stage within stale_after_s; this only "
        "re-delivers tasks a dead worker had reserved but not started.",
    )
    resend_after_s: float = Field(
        900.0,
        gt=0,
        description="Celery: a stage task sent this long ago that has not started is sent again (a broker restart "
        "without persistence loses queued tasks); the stage's lease makes a duplicate a no-op.",
    )
    isolate_compute: bool = Field(
        True,
        description="Embedded executor: run the stages that compute (evals, LoRA runs, curation) in a child "
        "process (spawned, niced), so that the API in this process stays fast while they run.",
    )

    @model_validator(mode="after")
    def _heartbeats_fit(self) -> ExecutorSettings:
        if self.stale_after_s <= 2 * self.heartbeat_s:
            raise ValueError(
                f"stale_after_s ({self.stale_after_s}) must exceed two heartbeats (heartbeat_s {self.heartbeat_s}): "
                "a live owner would be taken for dead"
            )
        return self

    eval_concurrency: int = Field(8, ge=1, description="Requests an eval keeps in flight.")
    eval_max_tokens: int = Field(128, ge=1, description="Answer length limit of eval requests.")


class ApiSettings(Section):
    """The REST API (flywheel serve)."""

    host: str = Field("127.0.0.1", description="Address flywheel serve listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port flywheel serve listens on.")
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding the API key; when it holds one, every /api call needs "
        "'Authorization: Bearer <key>'.",
    )


class ProxySettings(Section):
    """The logging proxy (flywheel proxy): an OpenAI-compatible endpoint in front of the big model that logs
    every call into the log store out of band and routes a workload to a promoted candidate."""

    upstream_url: str | None = Field(
        None, description="The big model's OpenAI-compatible base URL, ending in /v1 (--upstream overrides it)."
    )
    upstream_api_key_env: str | None = Field(
        None, description="Environment variable holding the upstream's API key (sent as a bearer token)."
    )
    host: str = Field("127.0.0.1", description="Address flywheel proxy listens on.")
    port: int = Field(8010, ge=1, le=65535, description="Port flywheel proxy listens on.")
    timeout_s: float = Field(600.0, gt=0, description="Seconds a call to the upstream or a candidate may take.")
    queue_size: int = Field(
        10_000, ge=1, description="Calls waiting to be logged, at most; beyond, a call is not logged (counted)."
    )
    batch_size: int = Field(200, ge=1, le=10_000, description="Calls written to the log store per batch, at most.")
    flush_interval_s: float = Field(
        0.2, gt=0, le=60, description="Longest a logged call waits for its batch to fill before it is written."
    )
    route_ttl_s: float = Field(
        1.0, ge=0, le=300, description="Seconds a workload's route (from the job store) is cached by the proxy."
    )
    canary_compare: bool = Field(
        True,
        description="In canary mode, also ask the big model (off the caller's path) for the requests the candidate "
        "answers, so live agreement is measured on them and their logs keep the big model's answer.",
    )


class JudgeSettings(Section):
    """LLM-as-judge: any OpenAI-compatible chat endpoint rates every eval sample; its tokens and cost are
    reported apart from the candidates'."""

    enabled: bool = Field(False, description="Ask an LLM judge to rate every eval sample.")
    base_url: str | None = Field(None, description="The judge's OpenAI-compatible endpoint, e.g. http://host:8000/v1.")
    model: str | None = Field(None, description="The judge's model name at that endpoint.")
    api_key_env: str | None = Field(
        None, description="The environment variable holding the judge's API key; null: none sent."
    )
    check_timeout_s: float = Field(
        20.0,
        gt=0,
        description="How long a job's judge check waits for an answer (it asks twice) before the judge counts as "
        "unavailable; LoRA runs and deployments wait for the check.",
    )
    required: bool = Field(
        False,
        description="What a job does when the judge does not answer its check: false, the judge is skipped and "
        "the job completes without judge metrics (the result and the API say why); true, the job fails before "
        "any training or deployment starts.",
    )
    price_per_1m_input_tokens: float | None = Field(
        None, ge=0, description="Price of 1M judge prompt tokens (set both prices or neither); null: unknown."
    )
    price_per_1m_output_tokens: float | None = Field(
        None, ge=0, description="Price of 1M judge completion tokens; null: unknown."
    )

    @model_validator(mode="after")
    def _complete(self) -> JudgeSettings:
        if self.enabled and not (self.base_url and self.model):
            raise ValueError("base_url and model are required when the judge is enabled")
        check_token_prices(self)
        return self


SMOLLM2_TOKENIZER = "builtin:smollm2"


class TeacherSettings(Section):
    """The big model whose calls are logged (the one a candidate should replace): its price per 1M prompt and
    completion tokens (both or neither) makes the savings computable, e.g. 0.88 and 0.88 for a hosted 70B
    model. A price left at null is unknown, and so is every saving: never guessed."""

    name: str | None = Field(None, description="Its name in reports, e.g. meta/llama-3.3-70b-instruct.")
    price_per_1m_input_tokens: float | None = Field(None, ge=0, description="Price of 1M prompt tokens; null: unknown.")
    price_per_1m_output_tokens: float | None = Field(
        None, ge=0, description="Price of 1M completion tokens; null: unknown."
    )
    tokenizer: str = Field(
        SMOLLM2_TOKENIZER,
        description="Counts the logged requests' and answers' tokens when the records carry no response.usage "
        "(the counts are then marked estimated): builtin:smollm2 (offline; another vocabulary than the "
        "teacher's, an approximation) or the teacher's own tokenizer as a folder or hub id.",
    )

    @model_validator(mode="after")
    def _paired(self) -> TeacherSettings:
        check_token_prices(self)
        return self


class CostSettings(Section):
    """The currency of every price."""

    currency: str = Field(
        "USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every price (and so of every reported cost)."
    )


class RecommendationSettings(Section):
    """The rule that names the model to use: the cheapest candidate and eval type whose metric's 95% interval
    lower bound reaches ``min_ratio`` x the logged model's value (1.0: its answers are the reference). A job
    overrides it with recommendation_config (flywheel run --recommend min_ratio=0.9)."""

    metric: str = Field(
        "function_name_accuracy",
        description="The metric compared: function_name_accuracy | function_name_and_args_accuracy | "
        "required_arguments_accuracy | argument_similarity | call_precision | call_recall | embedding_similarity.",
    )
    min_ratio: float = Field(
        0.95, gt=0, le=1, description="Share of the logged model's value the interval's lower bound must reach."
    )

    @model_validator(mode="after")
    def _known_metric(self) -> RecommendationSettings:
        from dataflywheel.evaluation.metrics import SUMMARY_METRICS

        if self.metric not in SUMMARY_METRICS:
            raise ValueError(f"metric {self.metric!r} is unknown (known: {', '.join(SUMMARY_METRICS)})")
        return self
