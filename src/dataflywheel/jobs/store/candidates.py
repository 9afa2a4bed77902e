"""A job's candidates and what they produce: candidate runs (their stage), evaluations, customizations, the
judge check and the datasets. Each update method takes typed keyword arguments; one left out is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, select

from dataflywheel.jobs.errors import JobFinishedError
from dataflywheel.jobs.records import (
    CandidateRunRecord,
    CustomizationRecord,
    DatasetRecord,
    EvaluationRecord,
    JudgeRecord,
    StageLease,
)
from dataflywheel.jobs.status import CandidateStage, EventKind, TaskStatus, check_transition
from dataflywheel.jobs.store.connection import StoreConnection
from dataflywheel.jobs.store.leases import check_fence
from dataflywheel.jobs.store.mapping import to_record
from dataflywheel.jobs.store.transitions import (
    add_event,
    apply_task_fields,
    change_message,
    keep_first_error,
    lock_job,
    lock_run,
    set_finished,
)
from dataflywheel.jobs.store.values import JUDGE_KINDS, UNSET, JudgeKind, Unset, clean_values, given
from dataflywheel.jobs.tables import CandidateRun, Customization, Dataset, Evaluation, JudgeRun, utcnow

_TaskRow = TypeVar("_TaskRow", Evaluation, Customization)
_Record = TypeVar("_Record", EvaluationRecord, CustomizationRecord)


class CandidateRows(StoreConnection):
    """Candidate runs, evaluations, customizations, the judge check and datasets."""

    def add_candidate_run(self, job_id: str, candidate: str) -> CandidateRunRecord:
        """The run of ``candidate`` in the job, created pending if it does not exist yet (idempotent).

        Raises :class:`JobFinishedError` when a new run would be added to a finished job.
        """
        with self._tx("add candidate run", write=True) as s:
            job = lock_job(s, job_id)
            run = s.scalar(
                select(CandidateRun).where(CandidateRun.job_id == job_id, CandidateRun.candidate == candidate)
            )
            if run is None:
                if job.status.terminal:
                    raise JobFinishedError(f"job {job_id} is {job.status.value}: cannot add candidate {candidate!r}")
                run = CandidateRun(job_id=job_id, candidate=candidate, stage=CandidateStage.PENDING)
                s.add(run)
                s.flush()
            return to_record(CandidateRunRecord, run)

    def set_candidate_stage(
        self, run_id: int, stage: CandidateStage, *, error: str | None = None
    ) -> CandidateRunRecord:
        """Move a candidate run to ``stage`` (transition-checked), keeping its first error.

        Leaving pending sets ``started_at``; a terminal stage sets ``finished_at`` and ``runtime_s``.
        """
        new = CandidateStage(stage)
        with self._tx("set candidate stage", write=True) as s:
            run = lock_run(s, run_id)
            old = run.stage
            check_transition(f"candidate {run.candidate} of job {run.job_id}", old, new)
            keep_first_error(run, error)
            if new != old:
                now = utcnow()
                run.stage = new
                if run.started_at is None and new is not CandidateStage.PENDING:
                    run.started_at = now
                if new.terminal:
                    set_finished(run, now)
                add_event(
                    s,
                    run.job_id,
                    EventKind.STAGE,
                    change_message(f"candidate {run.candidate}", old, new, error),
                    stage=f"candidate:{run.candidate}",
                    data={"from": old.value, "to": new.value, "error": error},
                    ts=now,
                )
            return to_record(CandidateRunRecord, run)

    def update_candidate_run(
        self,
        run_id: int,
        *,
        fence: StageLease | None = None,
        deployment: Mapping[str, object] | Unset | None = UNSET,
        started_at: datetime | Unset | None = UNSET,
        finished_at: datetime | Unset | None = UNSET,
        runtime_s: float | Unset | None = UNSET,
    ) -> CandidateRunRecord:
        """Set the fields given: ``deployment`` (JSON: base_url...), ``started_at``, ``finished_at``,
        ``runtime_s``. With ``fence``, only while that stage attempt still holds its lease
        (:class:`StaleAttemptError`)."""
        fields = clean_values(
            given(deployment=deployment, started_at=started_at, finished_at=finished_at, runtime_s=runtime_s)
        )
        with self._tx("update candidate run", write=True) as s:
            run = lock_run(s, run_id)
            check_fence(s, fence)
            for name, value in fields.items():
                setattr(run, name, value)
            return to_record(CandidateRunRecord, run)

    def upsert_evaluation(
        self,
        run_id: int,
        eval_type: str,
        *,
        fence: StageLease | None = None,
        status: TaskStatus | Unset = UNSET,
        progress: float | Unset = UNSET,
        done: int | Unset = UNSET,
        total: int | Unset | None = UNSET,
        eta_s: float | Unset | None = UNSET,
        scores: Mapping[str, object] | Unset = UNSET,
        artifact_path: str | Unset | None = UNSET,
        error: str | None = None,
        started_at: datetime | Unset | None = UNSET,
        finished_at: datetime | Unset | None = UNSET,
        runtime_s: float | Unset | None = UNSET,
    ) -> EvaluationRecord:
        """Create or update the ``eval_type`` evaluation of a candidate run; the fields given are set, the
        others are unchanged.

        ``status`` is transition-checked (running sets ``started_at``, a terminal status sets ``finished_at``
        and ``runtime_s``); ``progress`` is 0-100; of the errors the first is kept; explicit ``started_at``,
        ``finished_at``, ``runtime_s`` win over the derived ones. With ``fence`` (the writing stage attempt's
        lease) nothing is written once that attempt was taken over: :class:`StaleAttemptError`.
        """
        fields = clean_values(
            given(
                status=status,
                progress=progress,
                done=done,
                total=total,
                eta_s=eta_s,
                scores=scores,
                artifact_path=artifact_path,
                error=error,
                started_at=started_at,
                finished_at=finished_at,
                runtime_s=runtime_s,
            )
        )
        return self._upsert_run_task(
            Evaluation,
            run_id,
            {"eval_type": eval_type},
            fence,
            fields,
            EvaluationRecord,
            task=eval_type,
            done=0,
            scores={},
        )

    def upsert_customization(
        self,
        run_id: int,
        *,
        fence: StageLease | None = None,
        status: TaskStatus | Unset = UNSET,
        progress: float | Unset = UNSET,
        epochs_completed: int | Unset = UNSET,
        total_epochs: int | Unset | None = UNSET,
        steps_completed: int | Unset = UNSET,
        total_steps: int | Unset | None = UNSET,
        loss: float | Unset | None = UNSET,
        tokens_per_s: float | Unset | None = UNSET,
        eta_s: float | Unset | None = UNSET,
        adapter_name: str | Unset | None = UNSET,
        adapter_path: str | Unset | None = UNSET,
        metrics: Mapping[str, object] | Unset = UNSET,
        error: str | None = None,
        started_at: datetime | Unset | None = UNSET,
        finished_at: datetime | Unset | None = UNSET,
        runtime_s: float | Unset | None = UNSET,
    ) -> CustomizationRecord:
        """Create or update the customization of a candidate run (same rules as :meth:`upsert_evaluation`);
        the fields given are set, the others are unchanged."""
        fields = clean_values(
            given(
                status=status,
                progress=progress,
                epochs_completed=epochs_completed,
                total_epochs=total_epochs,
                steps_completed=steps_completed,
                total_steps=total_steps,
                loss=loss,
                tokens_per_s=tokens_per_s,
                eta_s=eta_s,
                adapter_name=adapter_name,
                adapter_path=adapter_path,
                metrics=metrics,
                error=error,
                started_at=started_at,
                finished_at=finished_at,
                runtime_s=runtime_s,
            )
        )
        return self._upsert_run_task(
            Customization,
            run_id,
            {},
            fence,
            fields,
            CustomizationRecord,
            task="customization",
            epochs_completed=0,
            steps_completed=0,
            metrics={},
        )

    def _upsert_run_task(
        self,
        table: type[_TaskRow],
        run_id: int,
        key: Mapping[str, object],
        fence: StageLease | None,
        fields: dict[str, object],
        record: type[_Record],
        *,
        task: str,
        **starting: object,
    ) -> _Record:
        """Create or update the row of ``table`` of a candidate run that matches ``key`` (``run_id`` and ``key``
        name it; a new row is pending at progress 0 with the ``starting`` values), then apply ``fields`` as the
        ``task`` stage of the run (see :func:`apply_task_fields`)."""
        with self._tx(f"upsert {table.__name__.lower()}", write=True) as s:
            run = lock_run(s, run_id)
            check_fence(s, fence)
            row = s.scalar(select(table).filter_by(candidate_run_id=run_id, **key))
            if row is None:
                row = table(candidate_run_id=run_id, **key, status=TaskStatus.PENDING, progress=0.0, **starting)
                s.add(row)
            apply_task_fields(s, row, fields, job_id=run.job_id, stage=f"candidate:{run.candidate}:{task}")
            s.flush()
            return to_record(record, row)

    def upsert_judge(
        self,
        job_id: str,
        *,
        model: str | Unset | None = UNSET,
        base_url: str | Unset | None = UNSET,
        kind: JudgeKind | Unset = UNSET,
        status: TaskStatus | Unset = UNSET,
        error: str | None = None,
    ) -> JudgeRecord:
        """Create or update the job's judge check; the fields given are set: ``model``, ``base_url``, ``kind``
        (remote, local, disabled), ``status`` (transition-checked), ``error`` (the first is kept)."""
        fields = given(model=model, base_url=base_url, kind=kind, status=status, error=error)
        if "kind" in fields and fields["kind"] not in JUDGE_KINDS:
            raise ValueError(f"judge kind must be one of {sorted(JUDGE_KINDS)}, got {fields['kind']!r}")
        with self._tx("upsert judge", write=True) as s:
            lock_job(s, job_id)
            judge = s.scalar(select(JudgeRun).where(JudgeRun.job_id == job_id))
            if judge is None:
                judge = JudgeRun(job_id=job_id, kind="disabled", status=TaskStatus.PENDING)
                s.add(judge)
            apply_task_fields(s, judge, fields, job_id=job_id, stage="judge", timed=False)
            s.flush()
            return to_record(JudgeRecord, judge)

    def set_datasets(
        self,
        job_id: str,
        datasets: Iterable[tuple[str, int, str | None, str | None]],
        *,
        fence: StageLease | None = None,
    ) -> list[DatasetRecord]:
        """Replace the job's datasets with ``(name, num_records, path, build_id)`` tuples (``fence``: only while
        that stage attempt holds its lease)."""
        rows = list(datasets)
        names = [r[0] for r in rows]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique, got {names}")
        with self._tx("set datasets", write=True) as s:
            lock_job(s, job_id)
            check_fence(s, fence)
            s.execute(delete(Dataset).where(Dataset.job_id == job_id))
            added = [
                Dataset(job_id=job_id, name=name, num_records=num, path=path, build_id=build_id)
                for name, num, path, build_id in rows
            ]
            s.add_all(added)
            s.flush()
            return sorted((to_record(DatasetRecord, d) for d in added), key=lambda d: d.name)
