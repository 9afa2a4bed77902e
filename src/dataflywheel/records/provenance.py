"""Who answered a logged call: the ``proxy`` field the logging proxy adds to each record it logs (the
record model keeps unknown top-level fields), read by curation (never train on a candidate's own answers)
and by live agreement. The proxy writes it (:mod:`dataflywheel.proxy.calls`); this module is its vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

PROXY_FIELD = "proxy"
"""The log record's top-level field that the proxy writes."""


class Answerer(StrEnum):
    TEACHER = "teacher"
    """The big model (the proxy's upstream)."""
    CANDIDATE = "candidate"
    """The promoted candidate of the workload's route."""


def response_from(record: Any) -> Answerer | None:
    """Whose answer a record's ``response`` is, when the proxy logged it (None for other records, or a value
    this version does not know)."""
    info = record.get(PROXY_FIELD) if isinstance(record, Mapping) else None
    value = info.get("response_from") if isinstance(info, Mapping) else None
    try:
        return Answerer(value) if isinstance(value, str) else None
    except ValueError:
        return None
