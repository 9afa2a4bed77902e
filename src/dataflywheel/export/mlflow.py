"""Log a finished job to MLflow (the ``mlflow`` extra) and record how it went in the job's result.

:func:`export_and_record` is what the job driver calls when a job completes and what
``flywheel export-mlflow`` calls for a job that has finished: it never raises for an export failure (MLflow
down, a bad URI); the failure is logged as a warning and stored as ``result["mlflow"]["error"]``, and the
job keeps its status. :func:`export_job` does the work and raises :class:`~dataflywheel.export.ExportError`.

The MLflow HTTP client retries a failed request 7 times with backoff by default (minutes); the export bounds
it by ``mlflow.http_retries`` and ``mlflow.http_timeout_s``, set as MLflow's ``MLFLOW_HTTP_REQUEST_*``
variables while it runs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, Unpack
from urllib.parse import urlsplit, urlunsplit

import orjson
from pydantic import BaseModel, Field

from dataflywheel.errors import DependencyMissingError, FlywheelError
from dataflywheel.export import ExportError
from dataflywheel.export.inputs import collect_job_files
from dataflywheel.export.plan import RunPlan, plan_job_run
from dataflywheel.jobs.records import JobDetail
from dataflywheel.jobs.status import EventKind
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import MlflowSettings, Settings

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from dataflywheel.jobs import JobStore

logger = logging.getLogger(__name__)

__all__ = [
    "MlflowExport",
    "ReportHook",
    "default_report_path",
    "export_and_record",
    "export_job",
    "log_run_plan",
    "redact_uri",
]

ReportHook = Callable[[JobDetail, Path], Path | None]
"""Renders a job's HTML report into the given scratch folder and returns the file (None: no report)."""


class ExportOptions(TypedDict, total=False):
    """The keywords of :func:`export_job` that :func:`export_and_record` passes on."""

    status: str | None
    report: Path | ReportHook | None


_ENV_LOCK = threading.Lock()
_LOCAL_SCHEMES = frozenset({"", "file", "sqlite"})
_ERROR_CHARS = 600


class MlflowExport(BaseModel):
    """``result["mlflow"]``: where the job was logged, or why it was not."""

    tracking_uri: str = Field(description="The tracking URI, without any password.")
    experiment: str
    experiment_id: str | None = None
    run_id: str | None = Field(None, description="The job's run (with an error: the run left failed, if any).")
    candidate_runs: dict[str, str] = Field(default_factory=dict, description="candidate -> its nested run.")
    exported_at: str
    error: str | None = Field(None, description="Why the export failed; None: it succeeded.")
    warnings: list[str] = Field(default_factory=list, description="What was left out (a malformed section...).")


def redact_uri(uri: str) -> str:
    """``uri`` without the password of its user part (the result and the logs are no place for it)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _scrub(message: str, uri: str) -> str:
    """``message`` without the URI's password (MLflow's errors quote the URL they failed on)."""
    password = urlsplit(uri).password
    return message.replace(password, "***") if password else message


def default_report_path(settings: Settings, job_id: str) -> Path:
    """Where a job's HTML report is looked for when no report is given: ``<home>/jobs/<id>/report.html``."""
    return settings.home / "jobs" / job_id / "report.html"


# ---- logging a plan ------------------------------------------------------------------------------------
@contextmanager
def _http_limits(settings: MlflowSettings) -> Iterator[None]:
    """MLflow reads its HTTP limits from the environment at each request: set ours for the export only."""
    values = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.http_timeout_s),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.http_retries),
    }
    with _ENV_LOCK:
        before = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _artifact_location(settings: MlflowSettings, home: Path) -> str | None:
    if settings.artifact_location:
        return settings.artifact_location
    # A local store's default is ./mlruns under whatever the working directory is: keep it under home.
    if urlsplit(settings.tracking_uri or "").scheme in _LOCAL_SCHEMES:
        return (home / "mlflow-artifacts").resolve().as_uri()
    return None


def _experiment_id(client: MlflowClient, settings: MlflowSettings, home: Path) -> str:
    from mlflow.exceptions import MlflowException

    name = settings.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return str(client.create_experiment(name, artifact_location=_artifact_location(settings, home)))
        except MlflowException:  # another process created it meanwhile
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise ExportError(f"MLflow experiment {name!r} is deleted: restore it or set another mlflow.experiment")
    return str(experiment.experiment_id)


def _log_run(client: MlflowClient, experiment_id: str, plan: RunPlan, parent_id: str | None, scratch: Path) -> str:
    """Create ``plan``'s run and log its params, metrics and files; returns its id (left running)."""
    from mlflow.entities import Metric, Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = dict(plan.tags)
    if parent_id is not None:
        tags[MLFLOW_PARENT_RUN_ID] = parent_id
    run = client.create_run(experiment_id, run_name=plan.name, tags=tags)
    run_id = str(run.info.run_id)
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(m.key, m.value, now, m.step) for m in plan.metrics],
        params=[Param(k, v) for k, v in plan.params.items()],
    )
    for doc in plan.documents:
        path = scratch / run_id / doc.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(doc.content, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
        client.log_artifact(run_id, str(path), doc.artifact_path or None)
    for artifact in plan.artifacts:
        if artifact.source.is_dir():
            client.log_artifacts(run_id, str(artifact.source), artifact.artifact_path or None)
        else:
            client.log_artifact(run_id, str(artifact.source), artifact.artifact_path or None)
    return run_id


def log_run_plan(plan: RunPlan, settings: MlflowSettings, home: Path) -> tuple[str, str, dict[str, str]]:
    """Log ``plan`` (a run with its nested runs) to ``settings.tracking_uri``; returns the experiment id, the
    run id and each nested run's id by name. Raises :class:`ExportError` (a run created before the failure
    is marked failed and named on the error)."""
    if not settings.tracking_uri:
        raise ExportError("mlflow.tracking_uri is not set: nothing to export to")
    try:
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise DependencyMissingError("the MLflow export needs mlflow: pip install 'data-flywheel[mlflow]'") from exc
    where = redact_uri(settings.tracking_uri)
    run_id: str | None = None
    with _http_limits(settings), tempfile.TemporaryDirectory(prefix="flywheel-mlflow-") as tmp:
        try:
            client = MlflowClient(tracking_uri=settings.tracking_uri)
            experiment_id = _experiment_id(client, settings, home)
            run_id = _log_run(client, experiment_id, plan, None, Path(tmp))
            children: dict[str, str] = {}
            for child in plan.children:
                children[child.name] = _log_run(client, experiment_id, child, run_id, Path(tmp))
                client.set_terminated(children[child.name], "FINISHED")
            client.set_terminated(run_id, "FINISHED")
            return experiment_id, run_id, children
        except ExportError as exc:
            exc.run_id = run_id
            raise
        except Exception as exc:  # the client's errors (MlflowException, requests, OSError) end here
            if run_id is not None:
                # The server that failed once may fail again: the error below says why.
                with suppress(Exception):
                    client.set_terminated(run_id, "FAILED")
            message = _scrub(f"{type(exc).__name__}: {exc}".strip(), settings.tracking_uri)
            if len(message) > _ERROR_CHARS:
                message = message[: _ERROR_CHARS - 1] + "…"
            raise ExportError(f"MLflow at {where}: {message}", run_id=run_id) from exc


# ---- jobs ----------------------------------------------------------------------------------------------
def _report(detail: JobDetail, settings: Settings, report: Path | ReportHook | None, scratch: Path) -> Path | None:
    if report is None:
        path = default_report_path(settings, detail.job.id)
        return path if path.is_file() else None
    if isinstance(report, Path):
        return report
    return report(detail, scratch)


def export_job(
    store: JobStore,
    settings: Settings,
    job_id: str,
    *,
    status: str | None = None,
    report: Path | ReportHook | None = None,
) -> MlflowExport:
    """Log job ``job_id`` to MLflow as it is stored now. ``status`` overrides the job's recorded status (the
    driver exports just before it marks the job completed); ``report`` is the HTML report (a file, or a
    hook that renders one; default: :func:`default_report_path` when it exists). Raises ExportError."""
    mlflow = settings.mlflow
    detail = store.job_detail(job_id)
    with tempfile.TemporaryDirectory(prefix="flywheel-report-") as tmp:
        report_path = _report(detail, settings, report, Path(tmp))
        files = collect_job_files(detail, report_path)
        if not mlflow.log_adapters:
            files = replace(files, adapters={})
        plan = plan_job_run(detail, files, status=status)
        experiment_id, run_id, children = log_run_plan(plan, mlflow, settings.home)
    warnings = [*plan.warnings, *(w for child in plan.children for w in child.warnings)]
    return MlflowExport(
        tracking_uri=redact_uri(mlflow.tracking_uri or ""),
        experiment=mlflow.experiment,
        experiment_id=experiment_id,
        run_id=run_id,
        candidate_runs=children,
        exported_at=datetime.now(UTC).isoformat(),
        warnings=warnings,
    )


def export_and_record(
    store: JobStore, settings: Settings, job_id: str, **options: Unpack[ExportOptions]
) -> MlflowExport:
    """:func:`export_job`, with the outcome stored as ``result["mlflow"]`` and a job event; a failure is
    logged as a warning and recorded, never raised (the job's own status does not depend on MLflow)."""
    try:
        outcome = export_job(store, settings, job_id, **options)
    except Exception as exc:  # an export must not fail the job, whatever went wrong in it
        logger.warning("job %s: MLflow export failed: %s", job_id, exc)
        outcome = MlflowExport(
            tracking_uri=redact_uri(settings.mlflow.tracking_uri or ""),
            experiment=settings.mlflow.experiment,
            run_id=getattr(exc, "run_id", None),
            exported_at=datetime.now(UTC).isoformat(),
            error=str(exc) if isinstance(exc, FlywheelError) else f"{type(exc).__name__}: {exc}",
        )
    for warning in outcome.warnings:
        logger.warning("job %s: MLflow export: %s", job_id, warning)
    record: JsonObject = outcome.model_dump(mode="json")
    try:
        result = dict(store.get_job(job_id).result or {})
        store.update_job(job_id, result={**result, "mlflow": record})
        if outcome.error is None:
            message = f"exported to MLflow run {outcome.run_id} ({outcome.tracking_uri}, {outcome.experiment})"
            store.add_event(job_id, EventKind.LOG, message, data=record)
        else:
            store.add_event(job_id, EventKind.ERROR, f"MLflow export failed: {outcome.error}", data=record)
    except FlywheelError as exc:  # the job was deleted meanwhile, or the store is down: the log says it
        logger.warning("job %s: could not record the MLflow export: %s", job_id, exc)
    return outcome
