"""A real OpenAI-compatible embeddings server for tests (stdlib ``http.server``, no mocks).

``POST /v1/embeddings`` with ``{"model", "input": str | [str], "input_type"?}`` answers
``{"object": "list", "data": [{"object": "embedding", "index": i, "embedding": [...]}], ...}``, computed
by a real :class:`~dataflywheel.icl.embedders.LocalEmbedder` (or any ``embed`` callable). It binds
127.0.0.1 on a free port and serves from a daemon thread.

Switches: ``fail_first=N`` answers HTTP 500 to the first N requests (retry tests); ``fail_status`` picks
that status; ``api_key`` requires ``Authorization: Bearer <key>`` (401 otherwise); ``reverse_order``
returns the data items in reverse order (clients must sort by ``index``). Every request's path, headers
and body are kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class EmbeddingServer:
    embed: Callable[[Sequence[str]], np.ndarray]
    api_key: str | None = None
    fail_first: int = 0
    fail_status: int = 500
    reverse_order: bool = False
    requests: list[SeenRequest] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> EmbeddingServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = None
                with server._lock:
                    server.requests.append(SeenRequest(self.path, dict(self.headers.items()), body))
                    failing = len(server.requests) <= server.fail_first
                if self.path.rstrip("/") != "/v1/embeddings":
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if server.api_key is not None and self.headers.get("Authorization") != (f"Bearer {server.api_key}"):
                    self._reply(401, {"error": {"message": "invalid api key"}})
                    return
                if failing:
                    self._reply(server.fail_status, {"error": {"message": "induced failure"}})
                    return
                if not isinstance(body, dict) or "input" not in body:
                    self._reply(400, {"error": {"message": "body must be an object with 'input'"}})
                    return
                inputs = body["input"]
                texts = [inputs] if isinstance(inputs, str) else list(inputs)
                vectors = server.embed(texts)
                data = [
                    {"object": "embedding", "index": i, "embedding": [float(x) for x in vec]}
                    for i, vec in enumerate(vectors)
                ]
                if server.reverse_order:
                    data.reverse()
                self._reply(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body.get("model"),
                        "usage": {"prompt_tokens": 0, "total_tokens": 0},
                    },
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> EmbeddingServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
