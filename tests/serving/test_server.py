"""The model server, run for real with uvicorn on a loopback port and asked with the official ``openai`` client.

Two engines: ``ScriptedEngine``, a deterministic stand-in whose answers the tests know in advance (exact
tool calls, failures on demand, a slow ``chat`` to force batching), and the real :class:`LocalEngine` with
the tiny random Llama and a LoRA adapter, which checks the whole path end to end.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from dataflywheel.models.client import EndpointError, OpenAIClient, SyncOpenAIClient, chat_payload
from dataflywheel.models.engine import LocalEngine, UnknownAdapterError
from dataflywheel.models.types import ChatRequest, ChatResult, SamplingParams, Usage
from dataflywheel.serving.app import create_app
from dataflywheel.serving.service import ChatService
from tests.serving import ServerThread, make_lora_adapter

BASE = "scripted-base"
ADAPTER = "support-v1"

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_order",
            "description": "Look an order up.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "refund",
            "description": "Refund an order.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    },
]


class ScriptedEngine:
    """Answers deterministically: a tool call (first tool, or the named one) when tools are given and
    tool_choice is not "none", else ``echo: <last user text> [<adapter>]``. A user text ``boom`` fails."""

    max_batch_size = 8

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.adapters = {ADAPTER: Path("/adapters/support-v1")}
        self.batches: list[int] = []
        self.requests: list[ChatRequest] = []
        self._lock = threading.Lock()

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        with self._lock:
            self.batches.append(len(requests))
            self.requests.extend(requests)
            time.sleep(self.delay)
            for r in requests:
                if r.adapter is not None and r.adapter not in self.adapters:
                    raise UnknownAdapterError(f"adapter {r.adapter!r} is not loaded")
            return [self._answer(r) for r in requests]

    def _answer(self, r: ChatRequest) -> ChatResult:
        text = next(m["content"] for m in reversed(r.messages) if m["role"] == "user")
        if text == "boom":
            raise RuntimeError("scripted failure")
        usage = Usage(prompt_tokens=len(str(r.messages).split()), completion_tokens=5)
        if r.tools and r.tool_choice != "none":
            name = (
                r.tool_choice["function"]["name"] if isinstance(r.tool_choice, dict) else r.tools[0]["function"]["name"]
            )
            call = {
                "id": "call_abc123",
                "type": "function",
                "function": {"name": name, "arguments": {"order_id": text}},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            return ChatResult(message=message, finish_reason="tool_calls", usage=usage)
        content = f"echo: {text} [{r.adapter or 'base'}]"
        return ChatResult(message={"role": "assistant", "content": content}, finish_reason="stop", usage=usage)


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedEngine, ServerThread]]:
    engine = ScriptedEngine(delay=0.05)
    with ServerThread(create_app(engine, BASE)) as server:
        yield engine, server


@pytest.fixture
def oai(scripted: tuple[ScriptedEngine, ServerThread]) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted[1].base_url, api_key="unused", max_retries=0, timeout=30)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You help customers."}, {"role": "user", "content": text}]


# the protocol, with the scripted engine ---------------------------------------------------------------


def test_chat_completion_answers_in_openai_shape(oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model=BASE, messages=user("hello"), max_tokens=20)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == BASE
    assert len(resp.choices) == 1
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "echo: hello [base]"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == 5
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 5


def test_sampling_parameters_reach_the_engine(
    scripted: tuple[ScriptedEngine, ServerThread], oai: openai.OpenAI
) -> None:
    engine = scripted[0]
    oai.chat.completions.create(
        model=BASE,
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}]},
            {"role": "user", "content": "sampling"},
        ],
        max_completion_tokens=33,
        temperature=0.7,
        top_p=0.9,
        stop="END",
        seed=7,
    )
    req = next(r for r in reversed(engine.requests) if r.messages[-1]["content"] == "sampling")
    assert req.messages[0] == {"role": "system", "content": "Be brief."}
    s = req.sampling
    assert (s.max_tokens, s.temperature, s.top_p, s.stop, s.seed) == (33, 0.7, 0.9, ["END"], 7)
    assert req.adapter is None and req.tools is None


def test_list_models_shows_base_and_adapters(oai: openai.OpenAI) -> None:
    models = {m.id: m for m in oai.models.list()}
    assert list(models) == [BASE, ADAPTER]
    assert models[ADAPTER].object == "model"
    assert models[ADAPTER].model_extra is not None and models[ADAPTER].model_extra["parent"] == BASE


def test_adapter_alias_is_a_model_name(scripted: tuple[ScriptedEngine, ServerThread], oai: openai.OpenAI) -> None:
    resp = oai.chat.completions.create(model=ADAPTER, messages=user("from the adapter"))
    assert resp.model == ADAPTER
    assert resp.choices[0].message.content == "echo: from the adapter [support-v1]"


@pytest.mark.parametrize(
    ("tool_choice", "expected_engine_choice", "expected_call"),
    [
        ("auto", "auto", "get_order"),
        (None, "auto", "get_order"),
        ("required", "required", "get_order"),
        (
            {"type": "function", "function": {"name": "refund"}},
            {"type": "function", "function": {"name": "refund"}},
            "refund",
        ),
        ("none", "none", None),
    ],
)
def test_tools_and_tool_choice(
    scripted: tuple[ScriptedEngine, ServerThread],
    oai: openai.OpenAI,
    tool_choice: Any,
    expected_engine_choice: Any,
    expected_call: str | None,
) -> None:
    text = f"order-{json.dumps(tool_choice)}"
    extra = {} if tool_choice is None else {"tool_choice": tool_choice}
    resp = oai.chat.completions.create(model=BASE, messages=user(text), tools=TOOLS, **extra)
    req = next(r for r in reversed(scripted[0].requests) if r.messages[-1]["content"] == text)
    assert req.tool_choice == expected_engine_choice
    assert req.tools is not None and [t["function"]["name"] for t in req.tools] == ["get_order", "refund"]
    choice = resp.choices[0]
    if expected_call is None:
        assert choice.finish_reason == "stop" and not choice.message.tool_calls
        return
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id == "call_abc123" and call.type == "function"
    assert call.function.name == expected_call
    assert json.loads(call.function.arguments) == {"order_id": text}  # JSON text on the wire


def test_tool_name_constraint_is_on_by_default_and_can_be_switched_off(
    scripted: tuple[ScriptedEngine, ServerThread], oai: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """``constrain_tool_names``, our extension (an extra body field), reaches the engine; unset means on."""

    def engine_flag(text: str) -> bool:
        return next(r for r in reversed(scripted[0].requests) if r.messages[-1]["content"] == text).constrain_tool_names

    with caplog.at_level(logging.WARNING, logger="dataflywheel.serving.protocol"):
        for text, body, expected in (
            ("constrain-default", None, True),
            ("constrain-off", {"constrain_tool_names": False}, False),
            ("constrain-on", {"constrain_tool_names": True}, True),
        ):
            oai.chat.completions.create(
                model=BASE, messages=user(text), tools=TOOLS, tool_choice="required", extra_body=body
            )
            assert engine_flag(text) is expected
    assert not any("ignoring fields" in r.getMessage() for r in caplog.records)  # a known field

    # Our client sends the opt-out (and only the opt-out: other servers may refuse unknown fields).
    with SyncOpenAIClient(OpenAIClient(scripted[1].base_url)) as client:
        for text, constrain in (("client-off", False), ("client-on", True)):
            request = ChatRequest(messages=user(text), tools=TOOLS, constrain_tool_names=constrain)
            client.chat(request, BASE)
            assert engine_flag(text) is constrain
    assert "constrain_tool_names" not in chat_payload(ChatRequest(messages=user("x"), tools=TOOLS), BASE)


def test_earlier_tool_calls_in_the_conversation_are_read(
    scripted: tuple[ScriptedEngine, ServerThread], oai: openai.OpenAI
) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "where is 7?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_order", "arguments": '{"order_id": "7"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'},
        {"role": "user", "content": "thanks"},
    ]
    oai.chat.completions.create(model=BASE, messages=messages, tools=TOOLS, tool_choice="none")
    req = next(r for r in reversed(scripted[0].requests) if r.messages[-1]["content"] == "thanks")
    # inside data-flywheel arguments are objects (the canonical form)
    assert req.messages[1]["tool_calls"][0]["function"]["arguments"] == {"order_id": "7"}
    assert req.messages[2]["role"] == "tool"


def test_streaming_text(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model=BASE, messages=user("stream me"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream me [base]"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_tool_calls_accumulate_with_the_official_helper(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model=BASE,
        messages=user("streamed call"),
        tools=TOOLS,
        tool_choice="required",
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_order"
    assert json.loads(call.function.arguments) == {"order_id": "streamed call"}


def test_stream_is_server_sent_events_ending_with_done(scripted: tuple[ScriptedEngine, ServerThread]) -> None:
    body = {"model": BASE, "messages": user("raw"), "stream": True}
    with httpx.stream("POST", scripted[1].base_url + "/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all("usage" not in p for p in payloads)  # not asked for: not sent
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["choices"][0]["delta"] == {}


# errors -----------------------------------------------------------------------------------------------


def _assert_openai_error(body: Any, type_: str) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type_ and error["message"]
    return error


def test_unknown_model_is_404(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="no-such-model", messages=user("x"))
    assert info.value.status_code == 404
    assert info.value.code == "model_not_found" and info.value.param == "model"
    error = _assert_openai_error(info.value.response.json(), "invalid_request_error")
    assert "no-such-model" in error["message"] and ADAPTER in error["message"]


def test_n_greater_than_one_is_400(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=BASE, messages=user("x"), n=2)
    assert info.value.param == "n"
    error = _assert_openai_error(info.value.response.json(), "invalid_request_error")
    assert "n=2" in error["message"]


@pytest.mark.parametrize(
    ("tool_choice", "tools", "needle"),
    [
        ("sometimes", TOOLS, "tool_choice must be"),
        ({"type": "function", "function": {"name": "launch_rocket"}}, TOOLS, "launch_rocket"),
        ({"type": "function", "function": {"name": "get_order"}}, None, "no tools"),
        ("required", None, "at least one tool"),
        ({"type": "function"}, TOOLS, "tool_choice must be"),
    ],
)
def test_bad_tool_choice_is_400(oai: openai.OpenAI, tool_choice: Any, tools: Any, needle: str) -> None:
    extra: dict[str, Any] = {"tool_choice": tool_choice}
    if tools is not None:
        extra["tools"] = tools
    with pytest.raises(openai.BadRequestError) as info:
        oai.chat.completions.create(model=BASE, messages=user("x"), **extra)
    assert info.value.param == "tool_choice"
    error = _assert_openai_error(info.value.response.json(), "invalid_request_error")
    assert needle in error["message"]


@pytest.mark.parametrize(
    ("content", "needle", "param"),
    [
        (b'{"model": "scripted-base", "messages": [', "not valid JSON", None),
        (b"[1, 2]", "JSON object", None),
        (b'{"model": "scripted-base"}', "messages", "messages"),
        (b'{"model": "scripted-base", "messages": []}', "at least one message", "messages"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', "role", "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 9}', "temperature", "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "logprobs": true}', "logprobs", "logprobs"),
    ],
)
def test_bad_requests_are_400_in_openai_shape(
    scripted: tuple[ScriptedEngine, ServerThread], content: bytes, needle: str, param: str | None
) -> None:
    resp = httpx.post(
        scripted[1].base_url + "/chat/completions", content=content, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400
    error = _assert_openai_error(resp.json(), "invalid_request_error")
    assert needle in error["message"]
    assert error["param"] == param


def test_unknown_route_is_404_in_openai_shape(scripted: tuple[ScriptedEngine, ServerThread]) -> None:
    resp = httpx.get(scripted[1].base_url + "/completions/nothing")
    assert resp.status_code == 404
    _assert_openai_error(resp.json(), "not_found_error")


def test_engine_failure_is_500_and_spares_the_rest_of_its_batch(
    scripted: tuple[ScriptedEngine, ServerThread], oai: openai.OpenAI
) -> None:
    def ask(text: str) -> str:
        try:
            return oai.chat.completions.create(model=BASE, messages=user(text)).choices[0].message.content or ""
        except openai.InternalServerError as exc:
            error = _assert_openai_error(exc.response.json(), "internal_error")
            assert "scripted failure" in error["message"]
            return "500"

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(ask, ["a", "boom", "b", "c"]))
    assert answers == ["echo: a [base]", "500", "echo: b [base]", "echo: c [base]"]


def test_unknown_fields_are_accepted_and_logged(oai: openai.OpenAI, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dataflywheel.serving.protocol"):
        resp = oai.chat.completions.create(
            model=BASE, messages=user("extra"), user="u-1", extra_body={"chat_template_kwargs": {"x": 1}}
        )
    assert resp.choices[0].message.content == "echo: extra [base]"
    assert any("chat_template_kwargs" in r.getMessage() and "user" in r.getMessage() for r in caplog.records)


def test_health(scripted: tuple[ScriptedEngine, ServerThread]) -> None:
    body = httpx.get(scripted[1].url + "/health").json()
    assert body["status"] == "ok"
    assert body["models"] == [BASE, ADAPTER]
    assert body["batching"]["requests"] >= body["batching"]["batches"]


# batching ---------------------------------------------------------------------------------------------


def test_concurrent_requests_are_batched_together() -> None:
    engine = ScriptedEngine(delay=0.2)
    with ServerThread(create_app(engine, BASE)) as server:
        oai = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)

        def ask(i: int) -> str:
            return oai.chat.completions.create(model=BASE, messages=user(f"q{i}")).choices[0].message.content or ""

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(ask, range(12)))
        stats = httpx.get(server.url + "/health").json()["batching"]
    assert answers == [f"echo: q{i} [base]" for i in range(12)]
    assert max(engine.batches) > 1, engine.batches
    assert max(engine.batches) <= engine.max_batch_size
    assert sum(engine.batches) == 12
    assert stats["largest_batch"] == max(engine.batches) and stats["requests"] == 12


def test_our_client_against_our_server(scripted: tuple[ScriptedEngine, ServerThread]) -> None:
    requests = [
        ChatRequest(messages=user(f"c{i}"), tools=TOOLS if i % 2 else None, tool_choice="auto" if i % 2 else None)
        for i in range(6)
    ]
    with SyncOpenAIClient(OpenAIClient(scripted[1].base_url, max_concurrency=6)) as client:
        results = client.chat_many(requests, BASE)
        assert client.models() == [BASE, ADAPTER]
        adapter_result = client.chat(ChatRequest(messages=user("via adapter"), adapter=ADAPTER), BASE)
    for i, result in enumerate(results):
        if i % 2:
            assert result.finish_reason == "tool_calls"
            call = result.message["tool_calls"][0]
            assert json.loads(call["function"]["arguments"]) == {"order_id": f"c{i}"}
        else:
            assert result.message["content"] == f"echo: c{i} [base]"
        assert result.usage.completion_tokens == 5 and result.latency_s > 0
    assert adapter_result.message["content"] == "echo: via adapter [support-v1]"


def test_service_refuses_requests_after_shutdown() -> None:
    service = ChatService(ScriptedEngine(), BASE)
    service.close()
    with pytest.raises(Exception, match="shutting down"):
        service.batcher.start()


# the real engine --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_server(
    tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalEngine, ServerThread]]:
    adapter = make_lora_adapter(tiny_model_dir, tmp_path_factory.getbasetemp() / "tiny-lora")
    # one torch thread: on a small shared CPU, more threads spin against each other and run 10-30x slower
    engine = LocalEngine(
        tiny_model_dir, device="cpu", dtype="float32", adapters={"tiny-lora": adapter}, max_batch_size=8, threads=1
    )
    with ServerThread(create_app(engine, "tiny-random-llama")) as server:
        yield engine, server


@pytest.fixture
def real_oai(real_server: tuple[LocalEngine, ServerThread]) -> openai.OpenAI:
    return openai.OpenAI(base_url=real_server[1].base_url, api_key="unused", max_retries=0, timeout=60)


def test_real_engine_chat_and_models(real_oai: openai.OpenAI) -> None:
    assert [m.id for m in real_oai.models.list()] == ["tiny-random-llama", "tiny-lora"]
    resp = real_oai.chat.completions.create(
        model="tiny-random-llama", messages=user("hello"), max_tokens=8, temperature=0
    )
    choice = resp.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert resp.usage is not None and 0 < resp.usage.completion_tokens <= 8 and resp.usage.prompt_tokens > 5
    again = real_oai.chat.completions.create(
        model="tiny-random-llama", messages=user("hello"), max_tokens=8, temperature=0
    )
    assert again.choices[0].message.content == choice.message.content  # greedy is deterministic


def test_real_engine_adapter_is_served_and_differs(real_oai: openai.OpenAI) -> None:
    def ask(model: str) -> tuple[str | None, Any]:
        r = real_oai.chat.completions.create(model=model, messages=user("adapter?"), max_tokens=12)
        m = r.choices[0].message
        return m.content, [c.function.name for c in m.tool_calls or []]

    base, lora = ask("tiny-random-llama"), ask("tiny-lora")
    assert lora != base  # random non-zero LoRA weights change the greedy answer
    assert ask("tiny-lora") == lora


@pytest.mark.parametrize(
    "tool_choice", ["auto", "none", "required", {"type": "function", "function": {"name": "refund"}}]
)
def test_real_engine_tools_and_tool_choice(real_oai: openai.OpenAI, tool_choice: Any) -> None:
    resp = real_oai.chat.completions.create(
        model="tiny-random-llama",
        messages=user("refund order 7"),
        tools=TOOLS,
        tool_choice=tool_choice,
        max_tokens=24,
    )
    choice = resp.choices[0]
    names = [c.function.name for c in choice.message.tool_calls or []]
    for call in choice.message.tool_calls or []:
        assert isinstance(json.loads(call.function.arguments), dict)
        assert call.id
    if tool_choice == "none":
        assert names == []
    if isinstance(tool_choice, dict):  # the prefill names the function; a random model may break the arguments
        assert set(names) <= {"refund"}
    if tool_choice == "required":  # the prefill forces a call, the constraint a tool's name (a random model
        # then breaks the arguments, and the parser may find no call at all)
        assert set(names) <= {"get_order", "refund"}


def test_real_engine_streaming(real_oai: openai.OpenAI) -> None:
    plain = real_oai.chat.completions.create(model="tiny-lora", messages=user("stream"), max_tokens=10)
    chunks = list(
        real_oai.chat.completions.create(
            model="tiny-lora",
            messages=user("stream"),
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == (plain.choices[0].message.content or "")
    assert chunks[-1].usage is not None and plain.usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_real_engine_batches_concurrent_requests(real_server: tuple[LocalEngine, ServerThread]) -> None:
    server = real_server[1]
    service: ChatService = server.app.state.service
    oai = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60)

    def ask(i: int) -> int:
        r = oai.chat.completions.create(model="tiny-random-llama", messages=user(f"q{i}"), max_tokens=16)
        return r.usage.completion_tokens if r.usage else 0

    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(ask, range(8)))
    assert all(t > 0 for t in tokens)
    assert service.batcher.stats.largest_batch > 1, service.batcher.stats


def test_our_client_loads_an_adapter_into_our_server(
    real_server: tuple[LocalEngine, ServerThread], tiny_model_dir: str, tmp_path: Path
) -> None:
    """The customized eval's call (vLLM's runtime LoRA API): a new alias is served at once; a folder that is
    not an adapter is refused at once (a 400 is not retried) with the server's reason."""
    adapter = make_lora_adapter(tiny_model_dir, tmp_path / "second-lora", seed=2)
    with SyncOpenAIClient(real_server[1].base_url, backoff=0.01) as client:
        client.load_lora_adapter("second-lora", str(adapter))
        assert "second-lora" in client.models()
        answer = client.chat(ChatRequest(messages=user("hi"), sampling=SamplingParams(max_tokens=4)), "second-lora")
        assert answer.usage.completion_tokens > 0
        with pytest.raises(EndpointError, match=r"HTTP 400") as info:
            client.load_lora_adapter("broken", str(tmp_path / "no-such-folder"))
        assert info.value.attempts == 1
