"""Which workload and client a proxied call belongs to: the headers ``X-Flywheel-Workload`` and
``X-Flywheel-Client``, else the request body's ``metadata`` (``workload_id``, ``client_id``). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from dataflywheel.records.model import ID_MAX_LENGTH

WORKLOAD_HEADER: Final = "x-flywheel-workload"
CLIENT_HEADER: Final = "x-flywheel-client"
METADATA_WORKLOAD: Final = "workload_id"
METADATA_CLIENT: Final = "client_id"


@dataclass(frozen=True, slots=True)
class Attribution:
    workload_id: str
    client_id: str


def _valid(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > ID_MAX_LENGTH or "\x00" in text:
        return None
    return text


def attribute(headers: Mapping[str, str], body: Mapping[str, Any] | None) -> Attribution | None:
    """The call's workload and client: each from its header when the header holds a valid id, else from the
    body's ``metadata``; None when either is missing or invalid (the call is forwarded but not logged).
    ``headers`` must be case-insensitive (Starlette's are) or lower-case."""
    metadata = body.get("metadata") if body is not None else None
    meta: Mapping[str, Any] = metadata if isinstance(metadata, Mapping) else {}
    workload = _valid(headers.get(WORKLOAD_HEADER)) or _valid(meta.get(METADATA_WORKLOAD))
    client = _valid(headers.get(CLIENT_HEADER)) or _valid(meta.get(METADATA_CLIENT))
    if workload is None or client is None:
        return None
    return Attribution(workload, client)
