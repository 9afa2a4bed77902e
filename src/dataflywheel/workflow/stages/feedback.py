"""The feedback loop's one stage: run the feedback pipeline (:mod:`dataflywheel.feedback`) over the
workload's logs and store its report as the job's result.
"""

from __future__ import annotations

from typing import Any

from dataflywheel.progress import Progress
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.workflow.stages.context import StageCancelled, StageContext
from dataflywheel.workflow.stages.deploy import server_env


def run_feedback(ctx: StageContext) -> JsonObject:
    from dataflywheel.feedback import pipeline
    from dataflywheel.models.deployments import DeploymentManager
    from dataflywheel.models.registry import resolve_model

    config = pipeline.FeedbackConfig.from_job(ctx.job.workload_id, ctx.job.client_id, ctx.job.config or {})
    with DeploymentManager(ctx.settings, env=server_env(ctx.settings)) as manager:

        def chat_for(name: str) -> tuple[Any, str]:
            deployment = manager.deploy(resolve_model(name, ctx.settings))
            client = deployment.client(max_concurrency=config.concurrency, timeout=600.0 if deployment.local else 120.0)
            return client, deployment.model

        weights = {"inference": (0.0, 70.0), "judging": (70.0, 25.0), "write-back": (95.0, 5.0)}

        def progress(p: Progress) -> None:
            start, span = weights.get(p.stage, (0.0, 100.0))
            if ctx.throttled("feedback", final=p.done == p.total):
                ctx.store.update_job(ctx.job.id, progress=round(start + span * p.done / max(1, p.total or 0), 2))

        try:
            report = pipeline.run_feedback(
                ctx.settings, ctx.job.id, config, chat_for=chat_for, should_cancel=ctx.should_cancel, progress=progress
            )
        except pipeline.FeedbackCancelled as exc:
            raise StageCancelled(str(exc)) from exc
    ctx.store.update_job(ctx.job.id, num_records=report["counts"]["inferred"], result=report)
    return report
