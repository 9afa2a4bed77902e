"""The endpoint client against a tiny HTTP server of our own that answers from a script: slow answers
(timeouts), 500s then 200s (retries), always 500 (a clear error), 429 with Retry-After, 400 (no retry)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from dataflywheel.errors import ConfigError
from dataflywheel.models.client import EndpointError, OpenAIClient, SyncOpenAIClient, retry_after_seconds
from dataflywheel.models.types import ChatRequest, SamplingParams


@dataclass
class Step:
    status: int = 200
    body: Any = None
    """None: a chat completion echoing the request's last user message."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion(content: str | None = "ok", tool_calls: list[dict[str, Any]] | None = None, finish: str = "stop") -> Any:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
    }


class ScriptServer:
    """Answers the n-th request with ``script[n]`` (the last step repeats). Keeps every request."""

    def __init__(self, *script: Step) -> None:
        self.script = list(script) or [Step()]
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.loads(raw) if raw else None
                with server._lock:
                    n = len(server.requests)
                    server.requests.append((self.command, self.path, dict(self.headers.items()), body))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                step = server.script[min(n, len(server.script) - 1)]
                try:
                    time.sleep(step.delay)
                    payload = step.body
                    if payload is None:
                        last = body["messages"][-1]["content"] if body and "messages" in body else "ok"
                        payload = completion(f"echo {last}")
                    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                    self.send_response(step.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in step.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

            do_GET = _handle
            do_POST = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[ScriptServer] = []

    def start(*script: Step) -> ScriptServer:
        server = ScriptServer(*script).__enter__()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.__exit__()


def ask(text: str = "hi", **kwargs: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], **kwargs)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# requests and answers ---------------------------------------------------------------------------------


def test_chat_sends_openai_wire_format_and_parses_the_answer(serve: Any) -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "get_order", "arguments": '{"order_id": "7"}'}}
    server = serve(Step(body=completion(None, [call], "tool_calls")))
    tools = [{"type": "function", "function": {"name": "get_order", "parameters": {"type": "object"}}}]
    request = ChatRequest(
        messages=[
            {"role": "user", "content": "where is 7?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_order", "arguments": {"order_id": "6"}}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
        ],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_order"}},
        sampling=SamplingParams(max_tokens=40, temperature=0.5, top_p=0.9, stop=["END"], seed=3),
    )
    client = OpenAIClient(server.base_url, api_key="sk-test")
    result = run(client.chat(request, "my-model"))

    method, path, headers, body = server.requests[0]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "my-model"
    assert body["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"order_id":"6"}'  # a JSON string
    assert request.messages[1]["tool_calls"][0]["function"]["arguments"] == {"order_id": "6"}  # not mutated
    assert body["tools"] == tools and body["tool_choice"]["function"]["name"] == "get_order"
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["stop"], body["seed"]) == (
        40,
        0.5,
        0.9,
        ["END"],
        3,
    )

    assert result.finish_reason == "tool_calls"
    assert result.message["content"] is None
    assert result.message["tool_calls"] == [call]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (11, 3)
    assert result.latency_s > 0
    (record,) = client.calls
    assert record.ok and record.attempts == 1 and record.status == 200 and record.model == "my-model"
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (11, 3)
    assert client.stats.calls == 1 and client.stats.usage.completion_tokens == 3


def test_adapter_of_the_request_is_the_model_name(serve: Any) -> None:
    server = serve(Step())
    run(OpenAIClient(server.base_url).chat(ask(adapter="support-v1"), "base"))
    assert server.requests[0][3]["model"] == "support-v1"


def test_api_key_from_the_environment(serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(Step())
    monkeypatch.setenv("MY_ENDPOINT_KEY", "sk-env")
    run(OpenAIClient(server.base_url, api_key_env="MY_ENDPOINT_KEY").chat(ask(), "m"))
    assert server.requests[0][2]["Authorization"] == "Bearer sk-env"
    monkeypatch.delenv("MY_ENDPOINT_KEY")
    with pytest.raises(ConfigError, match="MY_ENDPOINT_KEY"):
        OpenAIClient(server.base_url, api_key_env="MY_ENDPOINT_KEY")


def test_embeddings_are_ordered_by_index_and_models_are_listed(serve: Any) -> None:
    server = serve(
        Step(
            body={
                "object": "list",
                "data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}],
                "usage": {"prompt_tokens": 4},
            }
        ),
        Step(body={"object": "list", "data": [{"id": "a", "object": "model"}, {"id": "b", "object": "model"}]}),
    )
    client = OpenAIClient(server.base_url)
    vectors = run(client.embeddings(["x", "y"], "embedder", input_type="query"))
    assert vectors == [[1.0, 0.0], [0.0, 1.0]]
    assert server.requests[0][3] == {
        "model": "embedder",
        "input": ["x", "y"],
        "encoding_format": "float",
        "input_type": "query",
    }
    assert run(client.models()) == ["a", "b"]
    assert server.requests[1][:2] == ("GET", "/v1/models")
    assert [c.kind for c in client.calls] == ["embeddings", "models"]


def test_a_200_that_is_not_a_completion_is_a_clear_error(serve: Any) -> None:
    server = serve(Step(body={"unexpected": True}))
    client = OpenAIClient(server.base_url, max_retries=0)
    with pytest.raises(EndpointError, match="unexpected body") as info:
        run(client.chat(ask(), "m"))
    assert info.value.status == 200
    assert client.stats.failures == 1


# retries ----------------------------------------------------------------------------------------------


def test_500_then_200_is_retried(serve: Any) -> None:
    server = serve(Step(500, {"error": {"message": "overloaded"}}), Step())
    client = OpenAIClient(server.base_url, backoff=0.01)
    result = run(client.chat(ask("again"), "m"))
    assert result.message["content"] == "echo again"
    assert len(server.requests) == 2
    assert client.calls[-1].attempts == 2 and client.stats.retries == 1


def test_a_timeout_is_retried(serve: Any) -> None:
    server = serve(Step(delay=1.5), Step())
    client = OpenAIClient(server.base_url, timeout=0.3, backoff=0.01)
    started = time.monotonic()
    result = run(client.chat(ask("slow"), "m"))
    assert result.message["content"] == "echo slow"
    assert time.monotonic() - started < 1.4  # did not wait for the slow answer
    assert client.calls[-1].attempts == 2


def test_always_500_gives_a_clear_error_after_max_retries(serve: Any) -> None:
    server = serve(Step(500, {"error": {"message": "the GPU caught fire", "type": "internal_error"}}))
    client = OpenAIClient(server.base_url, max_retries=2, backoff=0.01)
    with pytest.raises(EndpointError) as info:
        run(client.chat(ask(), "m"))
    err = info.value
    assert len(server.requests) == 3  # the first attempt and two retries
    assert err.status == 500 and err.attempts == 3
    assert err.server_message == "the GPU caught fire"
    assert err.url == server.base_url + "/chat/completions"
    assert server.base_url in str(err) and "HTTP 500" in str(err) and "the GPU caught fire" in str(err)
    assert "3 attempt" in str(err)
    assert client.calls[-1].ok is False and client.stats.failures == 1


def test_4xx_fails_at_once(serve: Any) -> None:
    server = serve(Step(400, {"error": {"message": "n=2 is not supported", "param": "n"}}))
    client = OpenAIClient(server.base_url, max_retries=3, backoff=0.01)
    with pytest.raises(EndpointError, match="HTTP 400: n=2 is not supported") as info:
        run(client.chat(ask(), "m"))
    assert len(server.requests) == 1 and info.value.attempts == 1 and info.value.status == 400


def test_429_honours_retry_after(serve: Any) -> None:
    server = serve(Step(429, {"error": {"message": "slow down"}}, {"Retry-After": "0.4"}), Step())
    client = OpenAIClient(server.base_url, backoff=0.01)
    started = time.monotonic()
    run(client.chat(ask(), "m"))
    assert time.monotonic() - started >= 0.4
    assert len(server.requests) == 2


def test_connection_refused_is_retried_then_reported() -> None:
    with ScriptServer() as server:
        url = server.base_url
    client = OpenAIClient(url, max_retries=1, backoff=0.01)  # nothing listens there any more
    with pytest.raises(EndpointError, match="connection failed") as info:
        run(client.chat(ask(), "m"))
    assert info.value.status is None and info.value.attempts == 2


def test_retry_after_forms() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None
    assert retry_after_seconds(httpx.Headers()) is None


# concurrency, the blocking twin, test transports --------------------------------------------------------


def test_chat_many_keeps_order_and_bounds_concurrency(serve: Any) -> None:
    server = serve(Step(delay=0.1))
    client = OpenAIClient(server.base_url, max_concurrency=3)
    seen: list[int] = []
    results = run(client.chat_many([ask(f"q{i}") for i in range(10)], "m", on_result=lambda i, r: seen.append(i)))
    assert [r.message["content"] for r in results] == [f"echo q{i}" for i in range(10)]
    assert sorted(seen) == list(range(10))
    assert 1 < server.max_in_flight <= 3


def test_chat_many_raises_the_first_error_and_chat_many_settled_keeps_it(serve: Any) -> None:
    server = serve(Step(), Step(400, {"error": {"message": "bad"}}), Step())
    client = OpenAIClient(server.base_url, max_concurrency=1)
    with pytest.raises(EndpointError, match="bad"):
        run(client.chat_many([ask("a"), ask("b"), ask("c")], "m"))
    server.requests.clear()
    server.script = [Step(), Step(400, {"error": {"message": "bad"}}), Step()]
    results = run(client.chat_many_settled([ask("a"), ask("b"), ask("c")], "m"))
    assert isinstance(results[1], EndpointError)
    assert [getattr(r, "message", {}).get("content") for r in (results[0], results[2])] == ["echo a", "echo c"]


def test_sync_client_works_without_and_inside_an_event_loop(serve: Any) -> None:
    server = serve(Step())
    with SyncOpenAIClient(server.base_url) as client:
        assert client.chat(ask("sync"), "m").message["content"] == "echo sync"
        assert len(client.chat_many([ask("1"), ask("2")], "m")) == 2

        async def inside_a_loop() -> str:
            content: str = client.chat(ask("nested"), "m").message["content"]
            return content

        assert asyncio.run(inside_a_loop()) == "echo nested"
        assert client.stats.calls == 4
    with pytest.raises(RuntimeError, match="closed"):
        client.chat(ask(), "m")


def test_the_same_client_works_across_event_loops(serve: Any) -> None:
    server = serve(Step())
    client = OpenAIClient(server.base_url)
    assert run(client.chat(ask("one"), "m")).message["content"] == "echo one"
    assert run(client.chat(ask("two"), "m")).message["content"] == "echo two"


def test_an_injected_transport_replaces_the_network() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(200, json=completion("from the mock", finish="length"))

    client = OpenAIClient("http://endpoint.invalid/v1", transport=httpx.MockTransport(handler))
    result = run(client.chat(ask(), "m"))
    assert result.message["content"] == "from the mock" and result.finish_reason == "length"


def test_vllms_plain_text_answer_to_load_lora_adapter_is_a_success_but_not_for_chat() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="Success: LoRA adapter 'mine' added successfully.")

    client = SyncOpenAIClient(OpenAIClient("http://endpoint.invalid/v1", transport=httpx.MockTransport(handler)))
    client.load_lora_adapter("mine", "/adapters/mine")  # vLLM answers this in plain text
    with pytest.raises(EndpointError, match="the body is not JSON"):
        client.chat(ChatRequest(messages=[{"role": "user", "content": "x"}]), "m")
    client.close()
