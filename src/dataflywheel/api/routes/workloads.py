"""``GET /api/workloads``: every workload and client, with its logged records and its jobs; a workload's drift
since its last dataset (``GET /api/workloads/{workload_id}/drift``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from dataflywheel.api.deps import SettingsDep, StoreDep
from dataflywheel.api.errors import error_responses
from dataflywheel.api.schemas import NO_NUL, WorkloadPublic, WorkloadsPublic
from dataflywheel.drift.check import check_drift
from dataflywheel.drift.report import DriftReport
from dataflywheel.logstore import open_log_store
from dataflywheel.records.model import ID_MAX_LENGTH

router = APIRouter(prefix="/workloads", tags=["workloads"])


@router.get("", response_model=WorkloadsPublic)
def list_workloads(store: StoreDep, settings: SettingsDep) -> WorkloadsPublic:
    """Workloads (per client) that have records in the log store or jobs, most recently active first:
    those with jobs by their newest job, then those with only records by their newest record."""
    with open_log_store(settings) as logs:
        counts = {(c.workload_id, c.client_id): c for c in logs.counts()}
    rows: list[WorkloadPublic] = []
    for summary in store.workloads():
        key = (summary.workload_id, summary.client_id)
        count = counts.pop(key, None)
        rows.append(
            WorkloadPublic(
                workload_id=summary.workload_id,
                client_id=summary.client_id,
                records=count.records if count else 0,
                first_timestamp=count.first_timestamp if count else None,
                last_timestamp=count.last_timestamp if count else None,
                num_jobs=summary.num_jobs,
                last_job_id=summary.last_job_id,
                last_job_status=summary.last_status,
                last_job_created_at=summary.last_created_at,
            )
        )
    for count in sorted(counts.values(), key=lambda c: -(c.last_timestamp or 0.0)):
        rows.append(
            WorkloadPublic(
                workload_id=count.workload_id,
                client_id=count.client_id,
                records=count.records,
                first_timestamp=count.first_timestamp,
                last_timestamp=count.last_timestamp,
                num_jobs=0,
                last_job_id=None,
                last_job_status=None,
                last_job_created_at=None,
            )
        )
    return WorkloadsPublic(data=rows)


@router.get(
    "/{workload_id}/drift",
    response_model=DriftReport,
    responses=error_responses({422: "The last dataset's build folder is gone or unreadable (named)."}),
)
def workload_drift(
    store: StoreDep,
    settings: SettingsDep,
    workload_id: Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)],
    client_id: Annotated[str, Query(min_length=1, max_length=ID_MAX_LENGTH, pattern=NO_NUL)],
    embed: Annotated[
        bool, Query(description="Compare query embeddings too (drift.embed and icl.embedder; slower).")
    ] = True,
) -> DriftReport:
    """How far the workload's records logged after its newest dataset build have moved from that dataset:
    tool-class shift (with counts), new or changed tool schemas, query-embedding centroid distance; each
    against its threshold (the drift settings). Computed now; nothing is stored."""
    with open_log_store(settings) as logs:
        return check_drift(store, logs, settings, workload_id, client_id, embed=embed)
