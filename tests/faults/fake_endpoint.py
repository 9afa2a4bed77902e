"""A cheap OpenAI-compatible candidate for the fault suite (stdlib ``http.server``, in a thread): every job
runs real stages (datasets, deploy, evals over HTTP, finalize) without a model, so the suite spends its time
on faults, not on compute.

``POST /v1/chat/completions`` calls the request's first tool (a text answer when it has none) after ``delay_s``
(to keep an eval running while a fault is injected); ``POST /v1/embeddings`` answers hashed vectors;
``GET /v1/models`` says it is alive. ``requests`` counts the chat requests answered.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeEndpoint:
    delay_s: float = 0.3
    requests: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._reply({"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.endswith("/embeddings"):
                    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    data = [{"object": "embedding", "index": i, "embedding": _vector(t)} for i, t in enumerate(texts)]
                    self._reply({"object": "list", "data": data, "model": body.get("model")})
                    return
                time.sleep(endpoint.delay_s)
                with endpoint._lock:
                    endpoint.requests += 1
                tools = body.get("tools") or []
                if tools:
                    call = {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": tools[0]["function"]["name"], "arguments": "{}"},
                    }
                    message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
                    finish = "tool_calls"
                else:
                    message, finish = {"role": "assistant", "content": "Happy to help."}, "stop"
                self._reply(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "model": body.get("model"),
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
                    }
                )

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def _vector(text: str, dim: int = 16) -> list[float]:
    out = [0.0] * dim
    for word in text.lower().split():
        out[zlib.crc32(word.encode()) % dim] += 1.0
    norm = sum(v * v for v in out) ** 0.5 or 1.0
    return [v / norm for v in out]
