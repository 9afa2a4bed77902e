"""Cron expressions: five fields (minute hour day-of-month month day-of-week), in UTC, as ``croniter`` reads
them (``*/15 * * * *``, ``0 3 * * mon-fri``, ``@daily``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from croniter import croniter
from croniter.croniter import CroniterError

from dataflywheel.errors import ConfigError

__all__ = ["check_cron", "next_run"]

MAX_LENGTH: Final = 255
_NICKNAMES: Final = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


def check_cron(expression: str, field: str = "cron") -> str:
    """The expression, stripped, if it is a five-field cron expression (or a nickname such as ``@daily``);
    :class:`ConfigError` naming ``field`` and the reason otherwise."""
    text = expression.strip()
    if not text:
        raise ConfigError(f"{field}: empty cron expression")
    if len(text) > MAX_LENGTH:
        raise ConfigError(f"{field}: cron expression longer than {MAX_LENGTH} characters")
    if text.startswith("@"):
        if text.lower() not in _NICKNAMES:
            raise ConfigError(f"{field}: unknown cron nickname {text!r} (known: {', '.join(sorted(_NICKNAMES))})")
        return text.lower()
    parts = text.split()
    if len(parts) != 5:
        raise ConfigError(
            f"{field}: {text!r} has {len(parts)} field(s); a cron expression has 5: minute hour day-of-month "
            "month day-of-week (e.g. '0 3 * * *')"
        )
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise ConfigError(f"{field}: invalid cron expression {text!r}: {exc}") from None
    return " ".join(parts)


def next_run(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` (timezone-aware) that ``expression`` matches, in UTC."""
    if after.tzinfo is None:
        raise ValueError(f"naive datetime {after.isoformat()}: give a timezone-aware one")
    result: datetime = croniter(expression, after.astimezone(UTC)).get_next(datetime)
    return result.astimezone(UTC)
