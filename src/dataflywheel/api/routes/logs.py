"""``POST /api/logs``: store production log records sent over HTTP, validated like ``flywheel logs load``."""

from __future__ import annotations

import io
import time
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from dataflywheel.api.deps import SettingsDep
from dataflywheel.api.errors import InvalidBodyError
from dataflywheel.api.schemas import NO_NUL, IngestErrorPublic, LogsIngested, LogsRefused
from dataflywheel.ingest.jsonl import IngestReport, describe_json_error, load_stream, load_values
from dataflywheel.logstore import open_log_store
from dataflywheel.records.jsonvalue import JsonObject, json_type_name
from dataflywheel.records.model import ID_MAX_LENGTH, RecordOverrides
from dataflywheel.settings import Settings

router = APIRouter(prefix="/logs", tags=["logs"])

MAX_BODY_BYTES: Final = 256 * 1024 * 1024
"""Larger loads belong in files: ``flywheel logs load``."""
NDJSON_TYPES: Final = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "text/plain"}
)
JSON_TYPES: Final = frozenset({"application/json", ""})

_BODY_DOC: JsonObject = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "object"}},
                "example": [
                    {
                        "timestamp": 1733000000,
                        "workload_id": "primary_assistant",
                        "client_id": "northwind-1",
                        "request": {"messages": [{"role": "user", "content": "Where is my order?"}]},
                        "response": {
                            "choices": [{"message": {"role": "assistant", "content": "Let me check that for you."}}]
                        },
                    }
                ],
            },
            "application/x-ndjson": {"schema": {"type": "string", "description": "One JSON record a line."}},
        },
    }
}


@router.post(
    "",
    response_model=LogsIngested,
    openapi_extra=_BODY_DOC,
    responses={
        200: {"description": "Every record was stored (or was already stored)."},
        422: {
            "model": LogsRefused,
            "description": "Some records were refused: each is named by line (NDJSON) or position (JSON array) "
            "with why, and the others were stored all the same. Or the body is neither a JSON array nor NDJSON, "
            "or a query value is bad (then only detail).",
        },
    },
)
async def ingest_logs(
    request: Request,
    settings: SettingsDep,
    workload_id: Annotated[
        str | None,
        Query(max_length=ID_MAX_LENGTH, pattern=NO_NUL, description="Override every record's workload_id."),
    ] = None,
    client_id: Annotated[
        str | None,
        Query(max_length=ID_MAX_LENGTH, pattern=NO_NUL, description="Override every record's client_id."),
    ] = None,
) -> LogsIngested | JSONResponse:
    """Store log records: a JSON array of records, or NDJSON (``Content-Type: application/x-ndjson``).

    Records are in log form (timestamp, workload_id, client_id, request, response) or conversation form
    (``messages``; stamped with the time of arrival). Each is validated on its own: good ones are stored,
    and when any is refused (by validation, or by the log store) the answer is a 422 that names each by
    line or array position with the reason, beside the counts of what was stored. Storing is idempotent:
    a record sent again counts as a duplicate, so a body sent again after fixing its bad records is safe.
    """
    body = await _read_body(request)
    values = _records_array(body, request.headers.get("content-type", ""))
    report = await run_in_threadpool(_store, settings, body, values, workload_id, client_id)
    ingested = LogsIngested(
        records=report.lines - report.blank,
        loaded=report.store.added,
        duplicates=report.store.duplicates,
        skipped=report.skipped,
        errors=[IngestErrorPublic(line=e.line, error=e.reason) for e in report.errors],
        errors_truncated=report.skipped > len(report.errors),
        workloads=dict(sorted(report.workloads.items())),
    )
    if not report.skipped:
        return ingested
    lines = ", ".join(str(e.line) for e in report.errors[:10]) + (", ..." if report.skipped > 10 else "")
    refused = LogsRefused(
        detail=f"{report.skipped} of {ingested.records} records refused (lines or positions {lines}); "
        f"the other {report.store.accepted} were stored",
        **ingested.model_dump(),
    )
    return JSONResponse(refused.model_dump(mode="json"), status_code=422)


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise InvalidBodyError(f"the body is larger than {MAX_BODY_BYTES} bytes: load such files with the CLI")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise InvalidBodyError(f"the body is larger than {MAX_BODY_BYTES} bytes: load such files with the CLI")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise InvalidBodyError("the body is empty: send a JSON array of records or NDJSON")
    return body


def _records_array(body: bytes, content_type: str) -> list[Any] | None:
    """The body's records when it is a JSON array; None when it is NDJSON (one JSON value a line).

    The media type decides (JSON types: an array; NDJSON types: lines). Any other one (curl's default
    form type, say) is sniffed: a body starting with ``[`` is an array, with ``{`` NDJSON.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return None
    if media not in JSON_TYPES and not media.endswith("+json"):
        first = body.lstrip()[:1]
        if first == b"{":
            return None
        if first != b"[":
            raise InvalidBodyError(
                f"unsupported Content-Type {media!r}: send application/json (an array of records) "
                "or application/x-ndjson (one record a line)"
            )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidBodyError(
            f"the body is not a JSON array ({describe_json_error(body, exc)}); "
            "send NDJSON with Content-Type: application/x-ndjson"
        ) from None
    if not isinstance(value, list):
        raise InvalidBodyError(
            f"expected a JSON array of records, got a JSON {json_type_name(value)}; "
            "wrap a single record in [...] or send NDJSON with Content-Type: application/x-ndjson"
        )
    # Each item is validated as the same parser validates an NDJSON line (an error's line is the item's
    # 1-based position), without writing it back to JSON first: an item orjson cannot write is a line error.
    return value


def _store(
    settings: Settings, body: bytes, values: list[Any] | None, workload_id: str | None, client_id: str | None
) -> IngestReport:
    overrides = RecordOverrides(workload_id=workload_id, client_id=client_id, default_timestamp=time.time())
    batch_size = settings.log_store.batch_size
    with open_log_store(settings) as store:
        if values is not None:
            return load_values(store, values, batch_size=batch_size, **overrides)
        return load_stream(store, io.BytesIO(body), batch_size=batch_size, **overrides)
