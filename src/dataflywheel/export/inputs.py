"""What a finished job left on disk, read once into typed facts for an export plan (:mod:`.plan`).

* the dataset build: its id, its ``manifest.json``, and each split file's records, size and SHA-256 (from the
  manifest; a file the manifest does not hash, or a build without a manifest, is hashed here);
* each completed evaluation's ``summary.json``;
* each completed customization's adapter folder;
* an HTML report, when one is given or rendered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dataflywheel.datasets.artifacts import MANIFEST
from dataflywheel.evaluation.runner import SUMMARY_FILE
from dataflywheel.jobs.records import JobDetail
from dataflywheel.jobs.status import TaskStatus

__all__ = ["DatasetBuildFacts", "DatasetFile", "JobFiles", "collect_job_files", "read_dataset_build", "sha256_file"]


@dataclass(frozen=True)
class DatasetFile:
    """One split file of a build."""

    name: str
    """The file name (``eval.jsonl``)."""
    sha256: str
    records: int | None = None
    bytes: int | None = None


@dataclass(frozen=True)
class DatasetBuildFacts:
    """The dataset build a job used."""

    build_id: str
    folder: Path
    files: tuple[DatasetFile, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)
    """The manifest as written by the build; empty when the folder has none."""
    manifest_path: Path | None = None


@dataclass(frozen=True)
class JobFiles:
    """Every file of a job an export logs, by what it is."""

    dataset: DatasetBuildFacts | None = None
    eval_summaries: Mapping[tuple[str, str], Path] = field(default_factory=dict)
    """(candidate, eval type) -> the eval's ``summary.json``."""
    adapters: Mapping[str, Path] = field(default_factory=dict)
    """candidate -> its LoRA adapter folder."""
    report: Path | None = None
    """The job's HTML report."""
    missing: tuple[str, ...] = ()
    """Files the job recorded that are not here (deleted, or written on another host by a Celery worker)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_dataset_build(detail: JobDetail) -> DatasetBuildFacts | None:
    """The job's dataset build (None when it built none): the manifest's facts, hashes computed where missing."""
    paths = [Path(d.path) for d in detail.datasets if d.path]
    if not paths:
        return None
    folder = paths[0].parent
    build_id = next((d.build_id for d in detail.datasets if d.build_id), None) or folder.name
    manifest_path = folder / MANIFEST
    manifest: dict[str, Any] = orjson.loads(manifest_path.read_bytes()) if manifest_path.is_file() else {}
    listed: Mapping[str, Any] = manifest.get("files") or {}
    names = sorted({p.name for p in paths} | set(listed))
    files = []
    for name in names:
        entry = listed.get(name) or {}
        path = folder / name
        digest = entry.get("sha256") or (sha256_file(path) if path.is_file() else None)
        if digest is None:
            continue
        size = entry.get("bytes", path.stat().st_size if path.is_file() else None)
        files.append(DatasetFile(name, str(digest), entry.get("records"), size))
    return DatasetBuildFacts(
        build_id=str(manifest.get("build_id") or build_id),
        folder=folder,
        files=tuple(files),
        manifest=manifest,
        manifest_path=manifest_path if manifest else None,
    )


def collect_job_files(detail: JobDetail, report: Path | None = None) -> JobFiles:
    """The files of ``detail`` that exist now (a deleted folder is simply left out)."""
    summaries: dict[tuple[str, str], Path] = {}
    adapters: dict[str, Path] = {}
    missing: list[str] = []
    for run in detail.candidates:
        for ev in run.evaluations:
            if ev.status == TaskStatus.COMPLETED and ev.artifact_path:
                summary = Path(ev.artifact_path) / SUMMARY_FILE
                if summary.is_file():
                    summaries[(run.candidate, ev.eval_type)] = summary
                else:
                    missing.append(f"{ev.eval_type} summary of {run.candidate} ({summary})")
        custom = run.customization
        if custom is not None and custom.status == TaskStatus.COMPLETED and custom.adapter_path:
            if Path(custom.adapter_path).is_dir():
                adapters[run.candidate] = Path(custom.adapter_path)
            else:
                missing.append(f"adapter of {run.candidate} ({custom.adapter_path})")
    if report is not None and not report.is_file():
        missing.append(f"report ({report})")
    dataset = read_dataset_build(detail)
    if dataset is not None and not dataset.files:
        missing.append(f"dataset build {dataset.build_id} ({dataset.folder})")
    return JobFiles(
        dataset=dataset,
        eval_summaries=summaries,
        adapters=adapters,
        report=report if report is not None and report.is_file() else None,
        missing=tuple(missing),
    )
