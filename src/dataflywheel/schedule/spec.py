"""A schedule as a person gives it, checked before it is stored: its triggers and its jobs' overrides."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final

from dataflywheel.errors import ConfigError
from dataflywheel.schedule.cron import check_cron, next_run
from dataflywheel.settings import Settings

__all__ = ["JOB_CONFIG_KEYS", "MAX_MIN_NEW_RECORDS", "ScheduleSpec", "check_spec", "describe_triggers", "first_due"]

JOB_CONFIG_KEYS: Final = frozenset(
    {"candidates", "data_split_config", "icl_config", "learning_curve", "recommendation_config", "training_config"}
)
"""The overrides a job takes (``POST /api/jobs`` without its ids; a test keeps the two lists equal)."""

MAX_MIN_NEW_RECORDS: Final = 2**31 - 1
"""The job store's integers are 32-bit (PostgreSQL ``integer``)."""


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule does: its triggers (at least one), whether it is on, and its jobs' overrides."""

    cron: str | None = None
    min_new_records: int | None = None
    on_drift: bool = False
    enabled: bool = True
    job_config: dict[str, Any] = field(default_factory=dict)

    def as_kwargs(self) -> dict[str, Any]:
        """The spec as the job store's schedule methods take it (keyword arguments)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def check_triggers(cron: str | None, min_new_records: int | None, on_drift: bool) -> str | None:
    """The normalized cron expression, once the triggers are valid; :class:`ConfigError` naming the field."""
    if cron is None and min_new_records is None and not on_drift:
        raise ConfigError("cron, min_new_records, on_drift: give at least one trigger")
    if min_new_records is not None and not 1 <= min_new_records <= MAX_MIN_NEW_RECORDS:
        raise ConfigError(f"min_new_records: must be between 1 and {MAX_MIN_NEW_RECORDS}, got {min_new_records}")
    return None if cron is None else check_cron(cron)


def check_spec(settings: Settings, spec: ScheduleSpec) -> ScheduleSpec:
    """``spec`` with its cron expression normalized, once its triggers and job overrides are valid for the
    server's ``settings`` (the checks of ``POST /api/jobs``: known candidates, override values); a
    :class:`ConfigError` names the bad field (``job_config.<key>`` for an override)."""
    from dataflywheel.workflow.service import validate_job_config

    cron = check_triggers(spec.cron, spec.min_new_records, spec.on_drift)
    unknown = sorted(set(spec.job_config) - JOB_CONFIG_KEYS)
    if unknown:
        raise ConfigError(f"job_config.{unknown[0]}: unknown key (known: {', '.join(sorted(JOB_CONFIG_KEYS))})")
    try:
        validate_job_config(settings, dict(spec.job_config))
    except ConfigError as exc:
        raise ConfigError(f"job_config.{exc}") from None
    return ScheduleSpec(cron, spec.min_new_records, spec.on_drift, spec.enabled, dict(spec.job_config))


def first_due(cron: str | None, now: datetime) -> datetime | None:
    """When a schedule with ``cron`` made (or changed) at ``now`` first comes due; None without cron."""
    return None if cron is None else next_run(cron, now)


def describe_triggers(cron: str | None, min_new_records: int | None, on_drift: bool) -> str:
    """A schedule's triggers in words: ``cron 0 3 * * *, every 500 new records, on drift``."""
    parts = []
    if cron:
        parts.append(f"cron {cron} (UTC)")
    if min_new_records is not None:
        parts.append(f"every {min_new_records} new records")
    if on_drift:
        parts.append("on drift")
    return ", ".join(parts) or "none"
