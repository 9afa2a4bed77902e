"""The FastAPI app of the model server: ``GET /v1/models``, ``POST /v1/chat/completions``, ``GET /health``.

Every error leaves in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``: 400 for a request
that cannot be served (bad JSON, bad values, ``n`` > 1, a ``tool_choice`` naming no given tool), 404 for an
unknown model or route, 500 only when the engine fails on a request it accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from typing_extensions import Unpack

from dataflywheel.serving.protocol import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    ErrorInfo,
    ErrorResponse,
    ModelList,
)
from dataflywheel.serving.service import ChatEngine, ChatService, ServiceOptions, ServingError

logger = logging.getLogger(__name__)

router = APIRouter()


def get_service(request: Request) -> ChatService:
    service: ChatService = request.app.state.service
    return service


ServiceDep = Annotated[ChatService, Depends(get_service)]


@router.get("/v1/models", response_model=ModelList)
async def list_models(service: ServiceDep) -> ModelList:
    """The base model, then every loaded adapter (whose ``parent`` is the base model)."""
    return service.models()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(body: ChatCompletionRequest, service: ServiceDep) -> Response:
    """An OpenAI chat completion, or its server-sent events when ``stream`` is true."""
    prepared = service.prepare(body)
    if prepared.stream:
        return StreamingResponse(
            service.stream(prepared),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    response: ChatCompletionResponse = await service.complete(prepared)
    return JSONResponse(response.model_dump())


class AdapterRequest(BaseModel):
    """vLLM's body for ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``."""

    lora_name: str
    lora_path: str = ""


@router.post("/v1/load_lora_adapter")
async def load_lora_adapter(body: AdapterRequest, service: ServiceDep) -> dict[str, Any]:
    """Load a LoRA adapter folder under a name while serving (the same call as vLLM's runtime LoRA API)."""
    await asyncio.to_thread(service.load_adapter, body.lora_name, body.lora_path)
    return {"status": "ok", "models": service.model_names()}


@router.post("/v1/unload_lora_adapter")
async def unload_lora_adapter(body: AdapterRequest, service: ServiceDep) -> dict[str, Any]:
    await asyncio.to_thread(service.unload_adapter, body.lora_name)
    return {"status": "ok", "models": service.model_names()}


@router.get("/health")
async def health(service: ServiceDep) -> dict[str, Any]:
    """Liveness, the models served and what the batching queue has done."""
    return {"status": "ok", "models": service.model_names(), "batching": service.batcher.stats.as_dict()}


# errors -----------------------------------------------------------------------------------------------


def error_response(
    status: int, message: str, type_: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorInfo(message=message, type=type_, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


async def _serving_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServingError)
    if exc.status_code >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return JSONResponse(exc.to_response().model_dump(), status_code=exc.status_code)


_TOOL_CHOICE_FORMS = '\'auto\', \'none\', \'required\' or {"type": "function", "function": {"name": ...}}'


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, param = describe_validation_errors(exc.errors())
    return error_response(400, message, "invalid_request_error", param=param, code="invalid_value" if param else None)


def describe_validation_errors(errors: Sequence[Any]) -> tuple[str, str | None]:
    """One readable message for pydantic's errors, and the parameter (top-level field) at fault.

    A union field (``tool_choice``, ``stop``) fails once per member; those are told as one problem."""
    problems: dict[str, str] = {}
    for err in errors:
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error") or err.get("msg")
            return f"the request body is not valid JSON: {detail}", None
        loc = [p for p in err.get("loc", ()) if p != "body"]
        if not loc:
            problems.setdefault("", f"the request body must be a JSON object: {err.get('msg')}")
            continue
        field = str(loc[0])
        if field in problems:
            continue
        got = err.get("input")
        if field == "tool_choice":
            problems[field] = f"tool_choice must be {_TOOL_CHOICE_FORMS} (got {got!r})"
            continue
        # drop pydantic's union-member tags ("str", "list[str]", "function-after[...]") from the path
        path = [str(p) for p in loc if isinstance(p, int) or ("[" not in str(p) and str(p) not in ("str", "int"))]
        where = path[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path[1:])
        shown = "" if err.get("type") == "missing" or isinstance(got, dict | list) else f" (got {got!r})"
        problems[field] = f"{where}: {err.get('msg')}{shown}"
    params = [f for f in problems if f]
    return "; ".join(problems.values()) or "invalid request", (params[0] if params else None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    type_ = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    return error_response(exc.status_code, message, type_)


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal server error: {type(exc).__name__}: {exc}", "internal_error")


# the app ----------------------------------------------------------------------------------------------


def create_app(engine: ChatEngine, model_name: str, **options: Unpack[ServiceOptions]) -> FastAPI:
    """The server for ``engine``, answering as ``model_name`` (and as each of the engine's adapters).

    The options go to its :class:`~.service.ChatService`: ``max_batch`` (default: the engine's
    ``max_batch_size``, else 16) and ``batch_wait_s`` tune the batching queue: requests arriving within
    ``batch_wait_s`` of a first one go to the engine together.
    """
    service = ChatService(engine, model_name, **options)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(service.close)

    app = FastAPI(
        title="data-flywheel model server",
        summary="OpenAI-compatible chat completions for a local model and its LoRA adapters.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.include_router(router)
    app.add_exception_handler(ServingError, _serving_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    return app
