"""Where a job's files live: its folder, its evaluations' folders, its LoRA runs' names."""

from __future__ import annotations

from pathlib import Path

from dataflywheel.settings import Settings


def job_dir(settings: Settings, job_id: str) -> Path:
    """The job's own folder: its evals, its deployments' logs, its report (deleted with the job)."""
    return settings.home / "jobs" / job_id


def eval_dir(settings: Settings, job_id: str, candidate: str, eval_type: str) -> Path:
    """Where an evaluation of a job stores its samples and summary."""
    return job_dir(settings, job_id) / "evals" / folder_name(candidate) / eval_type


def training_run_name(job_id: str, candidate_run_id: int) -> str:
    """The LoRA run of a job's candidate (``<home>/training/<name>``): the job's and the candidate run's, so a
    retried customize stage resumes the same run from its checkpoint."""
    return f"{job_id[:12]}{candidate_run_id:04d}"


def folder_name(name: str) -> str:
    """A candidate name as one folder name (``org/model`` -> ``org_model``)."""
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in name)
