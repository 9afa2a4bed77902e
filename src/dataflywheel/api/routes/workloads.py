"""``GET /api/workloads``: every workload and client, with its logged records and its jobs."""

from __future__ import annotations

from fastapi import APIRouter

from dataflywheel.api.deps import SettingsDep, StoreDep
from dataflywheel.api.schemas import WorkloadPublic, WorkloadsPublic
from dataflywheel.logstore import open_log_store

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
