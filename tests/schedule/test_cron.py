"""Cron expressions: checked with errors naming the field; the next occurrence strictly after a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflywheel.errors import ConfigError
from dataflywheel.schedule.cron import check_cron, next_run

T = datetime(2026, 12, 1, 10, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/15 * * * *", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("0 3 * * *", datetime(2026, 12, 2, 3, 0, tzinfo=UTC)),
        ("0 9 * * mon", datetime(2026, 12, 7, 9, 0, tzinfo=UTC)),  # 2026-12-01 is a Tuesday
        ("@hourly", datetime(2026, 12, 1, 11, 0, tzinfo=UTC)),
        ("  30  10 * * *  ", datetime(2026, 12, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_next_run(expression: str, expected: datetime) -> None:
    assert next_run(check_cron(expression), T) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty cron expression"),
        ("* * * *", "has 4 field"),
        ("* * * * * *", "has 6 field"),
        ("61 * * * *", "invalid cron expression"),
        ("* 25 * * *", "invalid cron expression"),
        ("a b c d e", "invalid cron expression"),
        ("@often", "unknown cron nickname"),
        ("0 0 31 2 *", "invalid cron expression"),  # February 31st never comes
    ],
)
def test_bad_expressions_are_refused_naming_the_field(expression: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^when: .*{message}"):
        check_cron(expression, "when")


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        next_run("* * * * *", datetime(2026, 1, 1))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
)
def test_a_daily_time_comes_within_a_day_strictly_after(minute: int, hour: int, after: datetime) -> None:
    due = next_run(check_cron(f"{minute} {hour} * * *"), after)
    assert after < due <= after + timedelta(days=1)
    assert (due.hour, due.minute, due.second) == (hour, minute, 0)
    assert due.tzinfo is not None
