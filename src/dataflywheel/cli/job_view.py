"""The one live view of a running job in the terminal: progress bars for the whole job, its datasets, and per
candidate each evaluation and the customization (a feedback-loop job: its one bar).

It reads the job in the API's shape (``GET /api/jobs/{id}``, :class:`~dataflywheel.api.schemas.JobDetailPublic`
as JSON), wherever the job runs: ``flywheel jobs watch`` polls the API (:func:`follow` with the HTTP client),
``flywheel run``, ``flywheel demo`` and ``flywheel feedback`` read their own job store (:func:`follow_job`,
:func:`local_job`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Column

from dataflywheel.cli.common import console
from dataflywheel.jobs.status import JOB_TERMINAL, TASK_TERMINAL, JobKind
from dataflywheel.web.format import duration

if TYPE_CHECKING:
    from dataflywheel.api.schemas import CustomizationPublic, EvaluationPublic, JobDetailPublic
    from dataflywheel.jobs import JobStore
    from dataflywheel.jobs.records import JobRecord
    from dataflywheel.workflow.service import FlywheelService

__all__ = ["TERMINAL", "JobView", "follow", "follow_job", "local_job"]

TERMINAL: Final = frozenset(s.value for s in JOB_TERMINAL)
"""Job statuses a view stops at (a crashed job too: it never changes again)."""
TASK_ENDED: Final = frozenset(s.value for s in TASK_TERMINAL)
_STATUS_STYLE: Final = {
    "completed": "green",
    "failed": "red",
    "crashed": "bold red",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "running": "cyan",
    "skipped": "dim",
}
_CANDIDATE_TASKS: Final = ("base-eval", "icl-eval", "customization", "customized-eval")


def styled(status: str) -> str:
    """``status`` in its colour (rich markup)."""
    style = _STATUS_STYLE.get(status)
    return f"[{style}]{status}[/]" if style else status


def eval_detail(e: EvaluationPublic) -> str:
    """An evaluation's numbers while it runs: samples done, ETA."""
    detail = f"{e.done}/{e.total if e.total is not None else '?'} samples"
    if e.status == "running" and e.eta_s:
        detail += f", eta {duration(e.eta_s)}"
    return detail


def training_detail(c: CustomizationPublic) -> str:
    """A customization's numbers: epoch, step, loss, speed, ETA, the adapter once made."""
    parts = [
        f"epoch {c.epochs_completed}/{c.total_epochs or '?'}",
        f"step {c.steps_completed}/{c.total_steps or '?'}",
    ]
    if c.loss is not None:
        parts.append(f"loss {c.loss:.3f}")
    if c.tokens_per_s:
        parts.append(f"{c.tokens_per_s:.0f} tok/s")
    if c.status == "running" and c.eta_s:
        parts.append(f"eta {duration(c.eta_s)}")
    if c.customized_model:
        parts.append(f"adapter {c.customized_model}")
    return ", ".join(parts)


class JobView:
    """Rich progress bars for one job: the whole job, the datasets, then per candidate each evaluation and
    the customization (in a fixed order, shown pending until they start). ``progress`` is the live display:
    enter it, call :meth:`update` with each new state of the job; the last state stays on screen."""

    def __init__(self) -> None:
        # The detail gets what the fixed columns leave, cut short on a narrow terminal.
        detail_width = max(console.width - 64, 16)
        self.progress = Progress(
            TextColumn("{task.description}", table_column=Column(no_wrap=True, min_width=18)),
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]}", table_column=Column(no_wrap=True, min_width=10)),
            TextColumn(
                "[dim]{task.fields[detail]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=detail_width),
            ),
            console=console,
            auto_refresh=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def _set(self, key: str, description: str, percent: float, status: str, detail: str) -> None:
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = self.progress.add_task(description, total=100, status="", detail="")
        self.progress.update(task, completed=percent, description=description, status=styled(status), detail=detail)

    def update(self, job: JobDetailPublic, elapsed_s: float | None = None) -> None:
        """Show ``job`` (the API's shape); ``elapsed_s``: the time the caller has followed it, shown while it
        runs."""
        ended = job.status in TERMINAL
        notes = []
        if job.eta_s and not ended:
            notes.append(f"eta {duration(job.eta_s)}")
        if elapsed_s is not None:
            notes.append(f"{duration(elapsed_s)} elapsed")
        self._set("job", f"[bold]job {job.id[:12]}", job.progress, job.status, job.error or ", ".join(notes))
        if job.kind is JobKind.FEEDBACK:  # one stage, whose progress is the job's
            self.progress.refresh()
            return
        built = bool(job.datasets)
        records = f"{job.num_records} records read" if built else ""
        self._set("datasets", "  datasets", 100.0 if built else 0.0, "completed" if built else "pending", records)
        for nim in job.nims:
            name = nim.model_name
            tasks: dict[str, tuple[float, str, str]] = {}
            for e in nim.evaluations:
                percent = 100.0 if e.status == "completed" else e.progress
                tasks[e.eval_type] = (percent, e.status, e.error or eval_detail(e))
            for c in nim.customizations:
                percent = 100.0 if c.status == "completed" else c.progress
                tasks["customization"] = (percent, c.status, c.error or training_detail(c))
            done = [t[0] if t[1] not in TASK_ENDED else 100.0 for t in tasks.values()]
            overall = sum(done) / len(_CANDIDATE_TASKS)
            self._set(
                name,
                f"  [bold]{name}",
                overall,
                nim.status,
                nim.error or f"deployment {nim.deployment_status}",
            )
            for kind in _CANDIDATE_TASKS:
                percent, status, detail = tasks.get(kind, (0.0, "-" if ended else "pending", ""))
                self._set(f"{name}/{kind}", f"    {kind}", percent, status, detail)
        self.progress.refresh()


def follow(
    poll: Callable[[], JobDetailPublic], interval: float = 1.0, *, started: float | None = None
) -> JobDetailPublic:
    """Show the live view of the job ``poll()`` returns (the API's shape), polled every ``interval`` seconds
    until it ends; the job as it ended. ``started``: a ``time.monotonic()`` to show the elapsed time from."""
    view = JobView()
    with view.progress:  # a live display until the job ends; the last state stays on screen
        while True:
            job = poll()
            view.update(job, None if started is None else time.monotonic() - started)
            if job.status in TERMINAL:
                return job
            time.sleep(interval)


def poll_until_done(poll: Callable[[], JobDetailPublic], interval: float = 1.0) -> JobDetailPublic:
    """:func:`follow` without a display (``--json``): the job as it ended."""
    while (job := poll()).status not in TERMINAL:
        time.sleep(interval)
    return job


def local_job(store: JobStore, job_id: str) -> JobDetailPublic:
    """A job of this process's store in the API's shape (what ``GET /api/jobs/{id}`` answers)."""
    from dataflywheel.api.schemas import JobDetailPublic

    detail = store.job_detail(job_id)
    job = JobDetailPublic.of(detail)
    if detail.job.kind is JobKind.FEEDBACK:  # the loop reports its own progress; it has no candidate tasks
        job = job.model_copy(update={"progress": detail.job.progress})
    return job


def follow_job(service: FlywheelService, job_id: str, started: float | None = None) -> JobRecord:
    """Show the live view of a job this process runs until it ends; the job as it ended."""
    follow(lambda: local_job(service.store, job_id), started=started)
    return service.store.get_job(job_id)
