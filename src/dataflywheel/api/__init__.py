"""The flywheel's REST API (``flywheel serve``): create, watch, cancel and delete jobs, load logs.

The blueprint's orchestrator API (``/api/jobs``...) with its quirks fixed: request extras are refused
instead of silently dropped, ``POST /api/jobs`` reports the job's real status, listing is paginated and
filtered, and errors are 4xx with a message rather than 500s::

    from dataflywheel.api import create_api

    app = create_api(settings)  # an ASGI app; its lifespan starts and closes the FlywheelService
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataflywheel.api.app import create_api

__all__ = ["create_api"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the API's schemas (read by flywheel report) must not need FastAPI installed.
    if name == "create_api":
        from dataflywheel.api.app import create_api

        return create_api
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
