"""The proxy over real HTTP: the stand-in big model as the upstream, calls logged into a real SQLite store."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import orjson

from dataflywheel.proxy.stream import assemble_sse
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import Settings
from tests.proxy.conftest import CLIENT, HEADERS, TOOLS, WORKLOAD, Proxy, chat_body, start_proxy


def test_a_call_is_answered_as_the_upstream_answers_and_logged(proxy: Proxy) -> None:
    reply = httpx.post(proxy.base_url + "/chat/completions", json=chat_body("where is my order?"), headers=HEADERS)
    assert reply.status_code == 200
    answer = reply.json()
    assert answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "ToOrderStatus"
    (record,) = proxy.wait_logged(1)
    assert (record["workload_id"], record["client_id"]) == (WORKLOAD, CLIENT)
    assert record["request"]["messages"] == [{"role": "user", "content": "where is my order?"}]
    assert record["request"]["tools"][0]["function"]["name"] == TOOLS[0]["function"]["name"]
    assert record["response"]["id"] == answer["id"]
    assert record["proxy"]["answered_by"] == "teacher" and record["proxy"]["mode"] is None
    assert proxy.stats()["log"]["written"] == 1


def test_the_openai_client_works_through_the_proxy_with_metadata_attribution(proxy: Proxy) -> None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused")
    answer = client.chat.completions.create(
        model="big-model",
        messages=[{"role": "user", "content": "I want to return my tent"}],
        tools=TOOLS,  # type: ignore[arg-type]
        metadata={"workload_id": WORKLOAD, "client_id": CLIENT},
    )
    assert answer.choices[0].message.tool_calls[0].function.name == "ToReturnProcessing"  # type: ignore[index, union-attr]
    (record,) = proxy.wait_logged(1)
    assert record["request"]["metadata"] == {"workload_id": WORKLOAD, "client_id": CLIENT}


def strip(raw: bytes) -> list[dict[str, object]]:
    """A stream's events without their per-call id and timestamp."""
    return [
        {k: v for k, v in orjson.loads(line[6:]).items() if k not in ("id", "created")}
        for line in raw.split(b"\n\n")
        if line.startswith(b"data: {")
    ]


def test_a_stream_is_passed_through_and_logged_reassembled(proxy: Proxy) -> None:
    body = chat_body("please return these boots", stream=True, stream_options={"include_usage": True})
    direct = httpx.post(proxy.upstream.base_url + "/chat/completions", json=body)
    with httpx.stream("POST", proxy.base_url + "/chat/completions", json=body, headers=HEADERS) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        raw = b"".join(reply.iter_raw())
    # the same events as the upstream sends (ids and timestamps differ per call)
    assert strip(raw) == strip(direct.content) and raw.endswith(b"data: [DONE]\n\n")
    (record,) = proxy.wait_logged(1)
    assert record["response"] == orjson.loads(orjson.dumps(assemble_sse(raw))) | {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "",  # the stand-in's first chunk opens the content with ""
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            # arguments are stored as objects (records normalize them)
                            "function": {
                                "name": "ToReturnProcessing",
                                "arguments": {"query": "please return these boots"},
                            },
                        }
                    ],
                },
            }
        ]
    }
    assert record["response"]["usage"]["prompt_tokens"] == 10
    assert record["request"]["stream"] is True


def test_the_openai_client_streams_tool_calls_through_the_proxy(proxy: Proxy) -> None:
    client = openai.OpenAI(base_url=proxy.base_url, api_key="unused", default_headers=HEADERS)
    with client.chat.completions.stream(
        model="big-model",
        messages=[{"role": "user", "content": "order 12?"}],
        tools=TOOLS,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "ToOrderStatus"  # type: ignore[index]
    (record,) = proxy.wait_logged(1)
    assert record["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "ToOrderStatus"


def test_upstream_errors_pass_through_unchanged_and_are_not_logged(
    make_proxy: Callable[..., Proxy], settings: Settings
) -> None:
    failing = create_standin_app("never", fail_first=3)
    with BackgroundServer(failing) as upstream:
        direct = httpx.post(upstream.base_url + "/chat/completions", json=chat_body("x"))
        server, _ = start_proxy(upstream.base_url, settings)
        with server:
            for stream in (False, True):
                reply = httpx.post(
                    server.base_url + "/chat/completions", json=chat_body("x", stream=stream), headers=HEADERS
                )
                assert (
                    (reply.status_code, reply.content)
                    == (direct.status_code, direct.content)
                    == (
                        500,
                        b'{"error":{"message":"scripted failure","type":"server_error","param":null,"code":null}}',
                    )
                )
            bad = httpx.post(server.base_url + "/chat/completions", content=b"{not json", headers=HEADERS)
            bad_direct = httpx.post(upstream.base_url + "/chat/completions", content=b"{not json")
            assert (bad.status_code, bad.content) == (bad_direct.status_code, bad_direct.content)
            stats = httpx.get(server.url + "/proxy/stats").json()
    assert stats["log"]["written"] == 0 and stats["calls"]["requests"] == 3


def test_an_unreachable_upstream_is_a_502_in_openais_shape(settings: Settings) -> None:
    server, _ = start_proxy("http://127.0.0.1:9/v1", settings)
    with server:
        for stream in (False, True):
            reply = httpx.post(
                server.base_url + "/chat/completions", json=chat_body("x", stream=stream), headers=HEADERS
            )
            assert reply.status_code == 502
            assert "the upstream could not be reached" in reply.json()["error"]["message"]


def test_a_call_without_workload_is_forwarded_but_not_logged(proxy: Proxy) -> None:
    reply = httpx.post(proxy.base_url + "/chat/completions", json=chat_body("where is my order?"))
    assert reply.status_code == 200
    stats = proxy.stats()
    assert stats["calls"]["unattributed"] == 1 and stats["log"]["queued"] == 0


def test_models_are_the_upstreams(proxy: Proxy) -> None:
    assert httpx.get(proxy.base_url + "/models").json()["data"][0]["id"] == "big-model"


def test_flywheel_serve_mounts_the_proxy_under_proxy(upstream: BackgroundServer, settings: Settings) -> None:
    from fastapi.testclient import TestClient

    from dataflywheel.api import create_api
    from dataflywheel.settings import with_overrides

    mounted = with_overrides(settings, proxy={"upstream_url": upstream.base_url, "flush_interval_s": 0.05})
    app = create_api(mounted, start_jobs=False, recover=False, mount_proxy=True)
    with TestClient(app) as api:
        reply = api.post("/proxy/v1/chat/completions", json=chat_body("where is order 5?"), headers=HEADERS)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "ToOrderStatus"
        assert api.get("/proxy/stats").json()["calls"]["answered_by_teacher"] == 1
    # the lifespan's end drained the log writer
    assert Proxy("", upstream, None, mounted).wait_logged(1, timeout=2)[0]["proxy"]["answered_by"] == "teacher"  # type: ignore[arg-type]


def test_chat_completions_skip_fastapis_middleware_and_a_caller_gone_before_its_body_is_not_forwarded() -> None:
    import asyncio
    from typing import Any

    from dataflywheel.proxy.app import CHAT_PATH, create_proxy_app, stop_proxy
    from dataflywheel.proxy.app import start_proxy as start_its_client
    from dataflywheel.proxy.forwarder import Endpoint

    app = create_proxy_app(Endpoint("http://127.0.0.1:9/v1"))  # nothing listens there
    seen: list[str] = []

    @app.middleware("http")
    async def count(request: Any, call_next: Any) -> Any:
        seen.append(request.url.path)
        return await call_next(request)

    sent: list[dict[str, Any]] = []

    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": CHAT_PATH, "headers": [], "query_string": b""}
    asyncio.run(app(scope, gone, send))  # type: ignore[arg-type]
    assert sent == [] and app.proxy.counters.requests == 0 and seen == []

    async def health_then_chat() -> None:
        await start_its_client(app.proxy)  # what the lifespan does (ASGITransport runs none)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://proxy") as client:
            assert (await client.get("/health")).status_code == 200
            reply = await client.post(CHAT_PATH, json=chat_body("where is order 5?"), headers=HEADERS)
            assert reply.status_code == 502  # the upstream is unreachable, said by the proxy itself
            assert "could not be reached" in reply.json()["error"]["message"]
        await stop_proxy(app.proxy)

    asyncio.run(health_then_chat())
    assert seen == ["/health"]  # the chat call went around FastAPI's middleware
    assert app.proxy.counters.requests == 1 and app.proxy.counters.upstream_unreachable == 1
