"""Deprecated API paths: they still answer, every response (errors included) saying so.

A response under a deprecated prefix carries ``Deprecation: true`` and ``Link: <successor>;
rel="successor-version"`` (the draft IETF ``Deprecation`` header field), so a client sees the move before
the alias goes. A pure ASGI middleware: it only adds headers to the response's start message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEPRECATED_PREFIXES", "DeprecatedPaths"]

DEPRECATED_PREFIXES: Mapping[str, str] = {"/api/curations": "/api/feedback"}
"""Deprecated path prefix -> its successor (removed in the next release)."""


class DeprecatedPaths:
    """Adds the deprecation headers to every response under one of ``prefixes`` (prefix -> successor)."""

    def __init__(self, app: ASGIApp, prefixes: Mapping[str, str] = DEPRECATED_PREFIXES) -> None:
        self.app = app
        self.prefixes = dict(prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        successor = self._successor(scope) if scope["type"] == "http" else None
        if successor is None:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", []))
                headers.append((b"deprecation", b"true"))
                headers.append((b"link", f'<{successor}>; rel="successor-version"'.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _successor(self, scope: Scope) -> str | None:
        path: str = scope.get("path", "")
        for prefix, successor in self.prefixes.items():
            if path == prefix or path.startswith(prefix + "/"):
                # Percent-encoded: the path as decoded may hold bytes a header value must not (CR, LF, non-ASCII).
                return quote(successor + path[len(prefix) :], safe="/:@!$&'()*+,;=-._~")
        return None
