"""The stage graph of a flywheel job (pure: no I/O).

::

    datasets ─┬─> deploy(c) ─┬─> base-eval(c) ─────────────┬─> shutdown(c) ─> finalize
    judge ────┤              ├─> icl-eval(c) ──────────────┤
              └> customize(c) ┴─> customized-eval(c) ──────┘

``customize`` needs the datasets and the judge check (so a job whose required judge does not answer fails
before anything is trained), not the deployment, so a candidate's LoRA run overlaps its base and ICL evals.
Each stage
declares the resource it holds (a model server slot from deploy to shutdown, a training slot while it
trains) and the Celery queue it runs on; the scheduler starts a ready stage when its resource is free, so
independent candidates and jobs run side by side within those limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "Queue",
    "Resource",
    "StageKind",
    "StageSpec",
    "parse_stage_key",
    "plan_job",
    "stage_key",
    "stage_queue",
]


class StageKind(StrEnum):
    DATASETS = "datasets"
    JUDGE = "judge"
    DEPLOY = "deploy"
    BASE_EVAL = "base-eval"
    ICL_EVAL = "icl-eval"
    CUSTOMIZE = "customize"
    CUSTOMIZED_EVAL = "customized-eval"
    SHUTDOWN = "shutdown"
    FINALIZE = "finalize"
    FEEDBACK = "feedback"
    """The feedback loop's one stage (a job of kind :attr:`~dataflywheel.jobs.status.JobKind.FEEDBACK`)."""
    CURATE = "feedback"
    """Deprecated alias of :attr:`FEEDBACK`; a stage key ``curate`` (stored or queued before the rename)
    parses as :attr:`FEEDBACK`."""

    @classmethod
    def _missing_(cls, value: object) -> StageKind | None:
        return cls.FEEDBACK if value == "curate" else None


EVAL_KINDS = (StageKind.BASE_EVAL, StageKind.ICL_EVAL, StageKind.CUSTOMIZED_EVAL)


class Resource(StrEnum):
    MODEL_SLOT = "model_slot"
    """A deployed local candidate (memory, cores): taken by deploy, given back by shutdown."""
    TRAINING_SLOT = "training_slot"
    """A LoRA run (every core, or a GPU): held while the stage runs."""
    COMPUTE_SLOT = "compute_slot"
    """The machine's compute for model work (an eval's generation, a LoRA run): on a CPU-only machine one
    at a time, since two torch processes each wanting every core run slower together than in turn."""


class Queue(StrEnum):
    """Celery queues: stages that load a model on the accelerator (deploy, shutdown on the same host, train)
    and everything else (dataset builds, eval clients, bookkeeping)."""

    ACCELERATOR = "flywheel.accelerator"
    CPU = "flywheel.cpu"


ACCELERATOR_KINDS = frozenset({StageKind.DEPLOY, StageKind.CUSTOMIZE, StageKind.SHUTDOWN, StageKind.FEEDBACK})
"""The stages that hold a model on the accelerator: a worker of :attr:`Queue.ACCELERATOR` runs them."""


def stage_queue(kind: StageKind) -> Queue:
    """The Celery queue a stage of ``kind`` is sent to."""
    return Queue.ACCELERATOR if kind in ACCELERATOR_KINDS else Queue.CPU


@dataclass(frozen=True)
class StageSpec:
    key: str
    kind: StageKind
    candidate: str | None
    deps: tuple[str, ...]
    resources: tuple[Resource, ...] = ()
    queue: Queue = Queue.CPU

    @property
    def critical(self) -> bool:
        """A failed critical stage fails the whole job."""
        return self.kind in (StageKind.DATASETS, StageKind.JUDGE, StageKind.FEEDBACK)


def stage_key(kind: StageKind, candidate: str | None = None) -> str:
    """``datasets`` or ``base-eval:<candidate>`` (kinds hold no ``:``, so the first one splits)."""
    return kind.value if candidate is None else f"{kind.value}:{candidate}"


def parse_stage_key(key: str) -> tuple[StageKind, str | None]:
    kind, sep, candidate = key.partition(":")
    return StageKind(kind), candidate if sep else None


def plan_job(candidates: list[str], customizable: dict[str, bool] | None = None) -> list[StageSpec]:
    """Every stage of a job over ``candidates``, in an order where each stage follows its dependencies.
    ``customizable[c]`` False leaves out ``c``'s customize and customized-eval stages."""
    customizable = customizable or {}
    datasets, judge = stage_key(StageKind.DATASETS), stage_key(StageKind.JUDGE)
    stages = [StageSpec(datasets, StageKind.DATASETS, None, ()), StageSpec(judge, StageKind.JUDGE, None, ())]
    shutdowns = []
    for c in candidates:
        deploy = stage_key(StageKind.DEPLOY, c)
        stages.append(
            StageSpec(
                deploy, StageKind.DEPLOY, c, (datasets, judge), (Resource.MODEL_SLOT,), stage_queue(StageKind.DEPLOY)
            )
        )
        evals = []
        for kind in (StageKind.BASE_EVAL, StageKind.ICL_EVAL):
            stages.append(StageSpec(stage_key(kind, c), kind, c, (deploy,), (Resource.COMPUTE_SLOT,)))
            evals.append(stage_key(kind, c))
        if customizable.get(c, True):
            customize = stage_key(StageKind.CUSTOMIZE, c)
            stages.append(
                StageSpec(
                    customize,
                    StageKind.CUSTOMIZE,
                    c,
                    (datasets, judge),
                    (Resource.TRAINING_SLOT, Resource.COMPUTE_SLOT),
                    stage_queue(StageKind.CUSTOMIZE),
                )
            )
            customized = stage_key(StageKind.CUSTOMIZED_EVAL, c)
            stages.append(
                StageSpec(customized, StageKind.CUSTOMIZED_EVAL, c, (deploy, customize), (Resource.COMPUTE_SLOT,))
            )
            evals.append(customized)
        shutdown = stage_key(StageKind.SHUTDOWN, c)
        stages.append(
            StageSpec(shutdown, StageKind.SHUTDOWN, c, (deploy, *evals), queue=stage_queue(StageKind.SHUTDOWN))
        )
        shutdowns.append(shutdown)
    stages.append(StageSpec(stage_key(StageKind.FINALIZE), StageKind.FINALIZE, None, (datasets, judge, *shutdowns)))
    return stages


def plan_feedback() -> list[StageSpec]:
    """A feedback-loop job: one stage that deploys the student, infers, normalizes, filters and writes back
    (resumable inside), holding a model slot."""
    feedback = stage_key(StageKind.FEEDBACK)
    return [
        StageSpec(
            feedback,
            StageKind.FEEDBACK,
            None,
            (),
            (Resource.MODEL_SLOT, Resource.COMPUTE_SLOT),
            stage_queue(StageKind.FEEDBACK),
        )
    ]


plan_curation = plan_feedback
"""Deprecated alias of :func:`plan_feedback` (to be removed in the next release)."""
