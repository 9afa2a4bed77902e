"""The values the update methods write: :data:`UNSET` (a field left as it is, where ``None`` would clear it)
and the checks of what the database would store wrongly.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = ["UNSET", "JudgeKind", "Unset", "clean_values", "given"]

JudgeKind = Literal["remote", "local", "disabled"]
"""Where the job's judge runs: a remote endpoint, a local model, or nowhere (judge metrics left out)."""
JUDGE_KINDS: Final = frozenset({"remote", "local", "disabled"})


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "unset"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
"""The default of the update methods' keyword arguments: leave that field as it is."""


def given(**values: object) -> dict[str, object]:
    """The keyword arguments that were given (not :data:`UNSET`), by column name."""
    return {name: value for name, value in values.items() if value is not UNSET}


def clean_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with datetimes in UTC (what the database gives back, so records agree with reads);
    refuse values the database would store wrongly: progress outside 0-100, naive datetimes."""
    progress = fields.get("progress")
    if progress is not None and not 0.0 <= progress <= 100.0:
        raise ValueError(f"progress must be between 0 and 100, got {progress}")
    clean = dict(fields)
    for name, value in fields.items():
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"{name}: naive datetime {value.isoformat()}; give a timezone-aware one")
            clean[name] = value.astimezone(UTC)
    return clean
