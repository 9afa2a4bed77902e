"""Deployments: start a candidate's server (this process's deployment manager), check it is alive, stop it
(from any process on its host).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from dataflywheel.jobs.status import CandidateStage
from dataflywheel.settings import Settings
from dataflywheel.workflow.stages.context import StageContext
from dataflywheel.workflow.stages.paths import job_dir

if TYPE_CHECKING:
    from dataflywheel.models.client import OpenAIClient
    from dataflywheel.models.registry import ModelSpec

logger = logging.getLogger(__name__)


_manager_lock = threading.Lock()
_manager: Any = None


def server_env(settings: Settings) -> dict[str, str]:
    """What a model server started by a stage must know of this process's settings, which may have been changed
    in the process (the demo's): a server reads its settings from the environment and the settings file."""
    return {"FLYWHEEL_SERVING__DTYPE": settings.serving.dtype}


def _deployments(settings: Settings) -> Any:
    """This process's deployment manager (its servers are stopped when the process exits normally)."""
    global _manager
    from dataflywheel.models.deployments import DeploymentManager

    with _manager_lock:
        if _manager is None:
            _manager = DeploymentManager(settings, env=server_env(settings))
        return _manager


def deployment_client(info: dict[str, Any], **options: Any) -> OpenAIClient:
    """A client of the deployment a stage stored (``options``: the client's timeout, retries...). A vLLM
    deployment answers with the model's text, which the client parses (the codec's template)."""
    from dataflywheel.models.client import OpenAIClient

    options.setdefault("tool_calls_as_text", info.get("backend") == "vllm")
    return OpenAIClient(str(info["base_url"]), api_key_env=info.get("api_key_env"), **options)


def deployment_alive(info: dict[str, Any] | None) -> bool:
    """Whether a stored deployment's server still answers (any answer but a 5xx: it is up)."""
    from dataflywheel.models.client import EndpointError

    if not info or not info.get("base_url"):
        return False
    with deployment_client(info, timeout=3.0, max_retries=0).sync() as probe:
        try:
            probe.models()
        except EndpointError as exc:
            return exc.status is not None and exc.status < 500
    return True


class DeploymentRecord(TypedDict):
    """What the deploy stage stores about a deployment (the candidate run's ``deployment``)."""

    base_url: str
    model: str
    local: bool
    pid: int | None
    host: str
    api_key_env: str | None
    log_path: str | None
    backend: str | None
    """flywheel or vllm for a local candidate (None: a remote endpoint)."""
    backend_reason: str | None
    """Why that backend: ``serving.backend`` and what this machine has."""


def deploy_candidate(
    settings: Settings, candidate: str, job_id: str, training_config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Deploy ``candidate`` for job ``job_id``; a local server logs into the job's folder. ``training_config``
    (the job's) sets the LoRA rank a vLLM server reserves for the adapter the job trains. The record is a
    :class:`DeploymentRecord` (stored as JSON with the candidate run)."""
    from dataflywheel.models.registry import resolve_model

    spec = resolve_model(candidate, settings)
    rank = job_lora_rank(settings, spec, training_config) if spec.engine == "local" and spec.customizable else None
    deployment = _deployments(settings).deploy(spec, log_dir=job_dir(settings, job_id) / "deployments", lora_rank=rank)
    record: DeploymentRecord = {
        "base_url": deployment.base_url,
        "model": deployment.model,
        "local": deployment.local,
        "pid": deployment.pid,
        "host": socket.gethostname(),
        "api_key_env": spec.api_key_env,
        "log_path": str(deployment.log_path) if deployment.log_path else None,
        "backend": deployment.backend.backend if deployment.backend else None,
        "backend_reason": deployment.backend.reason if deployment.backend else None,
    }
    return dict(record)


def job_lora_rank(settings: Settings, spec: ModelSpec, training_config: Mapping[str, Any] | None) -> int | None:
    """The LoRA rank the job's customization will train (the recipe's for the candidate's size, the settings',
    the job's ``training_config``); None when it cannot be told (the server's default then)."""
    from dataflywheel.errors import FlywheelError
    from dataflywheel.models.registry import local_model_dir
    from dataflywheel.models.vllm_backend import choose_backend

    if choose_backend(settings).backend != "vllm":
        return None  # our server needs no rank up front
    from dataflywheel.training.config import TrainConfig
    from dataflywheel.training.recipes import count_parameters

    try:
        parameters = count_parameters(local_model_dir(spec, settings))
        return TrainConfig.from_settings(settings, training_config or {}, parameters=parameters).adapter_dim
    except FlywheelError as exc:  # a bad training_config fails the customization stage, with its message
        logger.warning("LoRA rank of %s unknown (%s): the server's default is used", spec.name, exc)
        return None


def run_deploy(ctx: StageContext) -> dict[str, Any]:
    run_id = ctx.run_id()
    ctx.store.set_candidate_stage(run_id, CandidateStage.DEPLOYING)
    info = deploy_candidate(
        ctx.settings, ctx.candidate or "", ctx.job.id, (ctx.job.config or {}).get("training_config")
    )
    ctx.store.update_candidate_run(run_id, fence=ctx.lease, deployment=info)
    ctx.store.set_candidate_stage(run_id, CandidateStage.EVALUATING)
    return info


def stop_deployment(info: dict[str, Any] | None) -> None:
    """Stop a local deployment by its process group (from any process on its host)."""
    if not info or not info.get("local") or not info.get("pid"):
        return
    global _manager
    with _manager_lock:
        manager = _manager
    if manager is not None:
        for deployment in manager.deployments:
            if deployment.pid == info["pid"]:
                deployment.stop()
                return
    if info.get("host") not in (None, socket.gethostname()):
        logger.warning("deployment %s runs on host %s: not stopped from here", info.get("base_url"), info["host"])
        return
    pid = int(info["pid"])
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def run_shutdown(ctx: StageContext) -> dict[str, Any]:
    run = ctx.candidate_run()
    if run.stage not in (CandidateStage.FAILED, CandidateStage.CANCELLED, CandidateStage.COMPLETED):
        ctx.store.set_candidate_stage(run.id, CandidateStage.SHUTTING_DOWN)
    stop_deployment(run.deployment)
    return {"stopped": bool(run.deployment and run.deployment.get("local"))}
