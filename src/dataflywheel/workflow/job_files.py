"""The files a flywheel job leaves on disk, found from its stored record, measured and removed.

What a job writes outside the job store:

* its own folder ``<home>/jobs/<id>/``: eval samples and summaries, its deployments' logs, a feedback-loop
  job's folder of outputs and verdicts (``curation/``, its name before the rename), the HTML report;
* the dataset build it made, ``<home>/datasets/<workload>/<client>/<build>/`` (every build has its own
  folder, never shared between jobs);
* per customized candidate, its LoRA run ``<home>/training/<run>/`` (per-epoch checkpoints with optimizer,
  scheduler and RNG state, the trained adapter) and the adapter registered from that run,
  ``<home>/adapters/<name>/`` (found by the run id in the registry, so an adapter registered just before a
  cancel is found too);
* a deployment log recorded outside the job folder (jobs of older versions logged to
  ``<home>/deployments/``).

Deleting a job removes all of it; a job that ends cancelled loses its training runs and adapters at once
(:func:`training_files`), since a cancelled job is never resumed and nothing it trained should be served.
A path read from the job store is removed only where files of its kind live (a dataset build under
``<home>/datasets/<workload>/<client>/``, an adapter directly under ``<home>/adapters/``, a ``.log`` file of
a deployment), never wherever else it may point; each path is listed once.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from dataflywheel.jobs.records import JobDetail
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import Settings
from dataflywheel.training.adapters import adapters_dir, list_adapters
from dataflywheel.training.customize import training_runs_dir
from dataflywheel.workflow.stages import job_dir, training_run_name

logger = logging.getLogger(__name__)

__all__ = [
    "FileKind",
    "JobFile",
    "Removal",
    "RemovedFile",
    "count_kinds",
    "format_bytes",
    "job_files",
    "remove_files",
    "size_of",
    "training_files",
]


class FileKind(StrEnum):
    JOB_FOLDER = "job_folder"
    """``<home>/jobs/<id>/``: evals, deployment logs, curation outputs, report."""
    DATASETS = "datasets"
    TRAINING_RUN = "training_run"
    """Checkpoints (adapter, optimizer, scheduler, RNG) and the trained adapter of one LoRA run."""
    ADAPTER = "adapter"
    """A registered adapter (``<home>/adapters/<name>/``)."""
    DEPLOYMENT_LOG = "deployment_log"

    @property
    def label(self) -> str:
        return "dataset build" if self is FileKind.DATASETS else self.value.replace("_", " ")


def count_kinds(kinds: list[FileKind]) -> str:
    """``"2 training runs, 1 adapter"`` (in first-seen order), or ``"nothing"``."""
    counts: dict[FileKind, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind.label}{'s' if n > 1 else ''}" for kind, n in counts.items()) or "nothing"


@dataclass(frozen=True)
class JobFile:
    kind: FileKind
    path: Path


@dataclass(frozen=True)
class RemovedFile(JobFile):
    bytes: int
    """What removing it freed."""


@dataclass
class Removal:
    removed: list[RemovedFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Paths that could not be removed (or only in part), with the reason."""

    @property
    def freed_bytes(self) -> int:
        return sum(r.bytes for r in self.removed)

    def summary(self) -> str:
        """``"2 training runs, 1 adapter, ...: 12.3 MB freed"`` for a log line or an event."""
        return f"{count_kinds([r.kind for r in self.removed])} removed: {format_bytes(self.freed_bytes)} freed"

    def to_dict(self) -> JsonObject:
        return {
            "freed_bytes": self.freed_bytes,
            "removed": [{"kind": r.kind.value, "path": str(r.path), "bytes": r.bytes} for r in self.removed],
            "problems": list(self.problems),
        }


def format_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def training_files(settings: Settings, detail: JobDetail) -> list[JobFile]:
    """The job's LoRA runs and the adapters registered from them (or named by its customizations)."""
    runs = {training_run_name(detail.job.id, run.id) for run in detail.candidates}
    files = [JobFile(FileKind.TRAINING_RUN, training_runs_dir(settings) / name) for name in sorted(runs)]
    names = {a.name for a in list_adapters(settings) if str(a.info.get("run_id") or "") in runs}
    names |= {
        run.customization.adapter_name
        for run in detail.candidates
        if run.customization is not None and run.customization.adapter_name
    }
    root = adapters_dir(settings)
    files += [JobFile(FileKind.ADAPTER, root / name) for name in sorted(names) if _within(root / name, root, 1)]
    return _distinct(settings, files)


def job_files(settings: Settings, detail: JobDetail) -> list[JobFile]:
    """Everything the job wrote outside the job store (see the module's docstring)."""
    folder = job_dir(settings, detail.job.id)
    files = [JobFile(FileKind.JOB_FOLDER, folder)]
    # A build is <datasets>/<workload>/<client>/<build>: a stored path anywhere else is not removed.
    builds = {Path(d.path).parent for d in detail.datasets if d.path}
    files += [JobFile(FileKind.DATASETS, b) for b in sorted(builds) if _within(b, settings.datasets_dir, 3)]
    files += training_files(settings, detail)
    logs = {Path(str(log)) for run in detail.candidates if (log := (run.deployment or {}).get("log_path"))}
    files += [
        JobFile(FileKind.DEPLOYMENT_LOG, log)
        for log in sorted(logs)
        if log.suffix == ".log" and (_within(log, settings.home / "deployments", 1) or _within(log, folder))
    ]
    return _distinct(settings, files)


def _within(path: Path, root: Path, depth: int | None = None) -> bool:
    """Whether ``path`` lies strictly inside ``root`` (``depth`` levels down, when given). A path read from
    the store is removed only where files of its kind live, never anywhere else it may point."""
    path, root = path.expanduser().resolve(), root.expanduser().resolve()
    if path == root or not path.is_relative_to(root):
        logger.warning("not removing %s: a job's file of this kind lives under %s", path, root)
        return False
    return depth is None or len(path.relative_to(root).parts) == depth


def _distinct(settings: Settings, files: list[JobFile]) -> list[JobFile]:
    """``files`` resolved, inside ``home``, each once: a path inside a folder listed before it is left out."""
    kept: list[JobFile] = []
    for f in files:
        if not _within(f.path, settings.home):
            continue
        path = f.path.expanduser().resolve()
        if not any(path.is_relative_to(k.path) for k in kept):
            kept.append(JobFile(f.kind, path))
    return kept


def size_of(path: Path) -> int:
    """Bytes of the file, or of every file under the folder (links are not followed); 0 when absent."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size
    except FileNotFoundError:
        return 0
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _rmtree(path: Path, errors: list[str]) -> None:
    """Remove a folder, going on past what cannot be removed (each failure noted in ``errors``)."""

    def note(_function: Any, failed: str, info: Any) -> None:
        errors.append(f"{failed}: {info[1] if isinstance(info, tuple) else info}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=note)
    else:
        shutil.rmtree(path, onerror=note)


def remove_files(files: list[JobFile]) -> Removal:
    """Remove ``files``; one that cannot be removed is a problem in the result, the others go all the same."""
    removal = Removal()
    for f in files:
        if not f.path.exists() and not f.path.is_symlink():
            continue
        before = size_of(f.path)
        errors: list[str] = []
        try:
            if f.path.is_dir() and not f.path.is_symlink():
                _rmtree(f.path, errors)
            else:
                f.path.unlink()
        except OSError as exc:
            errors.append(f"{f.path}: {exc}")
        freed = before - size_of(f.path)
        if errors:
            removal.problems.append(f"{f.kind.value} {f.path} not removed in full: {errors[0]}")
        if freed > 0 or not f.path.exists():
            removal.removed.append(RemovedFile(f.kind, f.path, freed))
    return removal
