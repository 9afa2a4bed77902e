"""What each stage of a flywheel job does. The same code runs in the embedded executor's threads and in
Celery workers: a stage reads its inputs from the job store (the job, earlier stages' outputs, the
candidate's deployment) and writes its outputs and progress back there.

:func:`execute_stage` is the one entry point: it marks the stage running, runs it, and records how it ended
(completed with its output, failed with the error, cancelled, or skipped with the reason).

Leases and fencing. Each attempt of a stage holds a lease in the job store (its owner, its attempt number as
the fencing token, a heartbeat every ``executor.heartbeat_s``). A stage running under a live lease is not
started again (a duplicate delivery exits at once), and an attempt whose lease was taken over (its owner
went silent for ``executor.stale_after_s`` and the stage was re-queued) stops at its next cancellation check
and writes no result: its result writes carry the lease and are refused in the same transaction.

The modules: :mod:`.context` (what a running stage holds), :mod:`.execute` (one attempt, the stage table),
:mod:`.setup` (datasets, judge check), :mod:`.deploy`, :mod:`.evaluation`, :mod:`.customize`,
:mod:`.finalize`, :mod:`.feedback` (the feedback loop's stage) and :mod:`.paths` (a job's folders).
"""

from __future__ import annotations

from dataflywheel.workflow.stages.context import (
    PROGRESS_INTERVAL_S,
    LeaseKeeper,
    StageCancelled,
    StageContext,
    StageSkipped,
    job_settings,
)
from dataflywheel.workflow.stages.customize import run_customize
from dataflywheel.workflow.stages.deploy import (
    deploy_candidate,
    deployment_alive,
    deployment_client,
    run_deploy,
    run_shutdown,
    stop_deployment,
)
from dataflywheel.workflow.stages.evaluation import adapter_curve, run_evaluation
from dataflywheel.workflow.stages.execute import STAGES, execute_stage
from dataflywheel.workflow.stages.feedback import run_feedback
from dataflywheel.workflow.stages.finalize import run_finalize
from dataflywheel.workflow.stages.paths import eval_dir, folder_name, job_dir, training_run_name
from dataflywheel.workflow.stages.setup import run_datasets, run_judge

__all__ = [
    "PROGRESS_INTERVAL_S",
    "STAGES",
    "LeaseKeeper",
    "StageCancelled",
    "StageContext",
    "StageSkipped",
    "adapter_curve",
    "deploy_candidate",
    "deployment_alive",
    "deployment_client",
    "eval_dir",
    "execute_stage",
    "folder_name",
    "job_dir",
    "job_settings",
    "run_customize",
    "run_datasets",
    "run_deploy",
    "run_evaluation",
    "run_feedback",
    "run_finalize",
    "run_judge",
    "run_shutdown",
    "stop_deployment",
    "training_run_name",
]
