"""How numbers, money, durations and times read on the page and in the report (pure; Jinja filters too).

``None`` reads as what it means: a price that is not set is "unknown", a value not measured is "-".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Concatenate, Final, ParamSpec, TypeVar

__all__ = [
    "FILTERS",
    "NOT_COMPUTED",
    "NOT_MEASURED",
    "UNKNOWN",
    "duration",
    "interval",
    "money",
    "number",
    "percent",
    "seconds",
    "when",
]

UNKNOWN = "unknown"
"""A cost whose price is not configured (``cost_per_1k: None``)."""
NOT_COMPUTED = "not computed"
"""A section the stored result lacks (a result stored before it existed)."""
NOT_MEASURED = "-"
"""A value that was not measured (None): a metric without samples, a latency without calls, a time not reached."""

_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}

_V = TypeVar("_V")
_P = ParamSpec("_P")


def _measured(format_value: Callable[Concatenate[_V, _P], str]) -> Callable[Concatenate[_V | None, _P], str]:
    """``format_value`` that reads None as :data:`NOT_MEASURED`."""

    @functools.wraps(format_value)
    def formatted(value: _V | None, /, *args: _P.args, **kwargs: _P.kwargs) -> str:
        return NOT_MEASURED if value is None else format_value(value, *args, **kwargs)

    return formatted


@_measured
def number(value: float, digits: int = 3) -> str:
    """``0.533``; ``-`` for None."""
    return f"{value:.{digits}f}"


def interval(low: float | None, high: float | None, digits: int = 2) -> str:
    """``[0.40, 0.65]``; empty when either end is unknown."""
    if low is None or high is None:
        return ""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def money(value: float | None, currency: str = "USD") -> str:
    """``$0.0123``, ``$12.40`` or ``12.40 CHF``; ``unknown`` for None (no price configured)."""
    if value is None:
        return UNKNOWN
    if value == 0:
        amount = "0"
    elif abs(value) >= 1:
        amount = f"{value:,.2f}"
    else:
        amount = f"{value:.3g}"
    symbol = _SYMBOLS.get(currency.upper())
    return f"{symbol}{amount}" if symbol else f"{amount} {currency}"


@_measured
def percent(value: float, digits: int = 0) -> str:
    """A share (0.42) as ``42%``; ``-`` for None."""
    return f"{100 * value:.{digits}f}%"


@_measured
def seconds(value: float) -> str:
    """A latency: ``85 ms``, ``1.24 s``; ``-`` for None."""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


@_measured
def duration(value: float) -> str:
    """A run time: ``42 s``, ``3.5 min``, ``1.2 h``; ``-`` for None."""
    value = max(value, 0.0)
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


@_measured
def when(value: datetime) -> str:
    """A UTC time as ``2026-05-01 14:03:12 UTC``; ``-`` for None."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


FILTERS: Final[dict[str, Callable[..., str]]] = {
    f.__name__: f for f in (number, interval, money, percent, seconds, duration, when)
}
"""The formatters by name, as the templates' Jinja filters."""
