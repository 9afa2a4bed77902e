"""The one transport under chat, judge, embeddings, model listing and adapter loading: which answers are
retried, how long it waits (backoff, the server's Retry-After), where the API key comes from, and how a
body that is not what was asked for is reported. Scripted answers come from httpx's MockTransport (the
test seam every caller accepts) or from our OpenAI-compatible stand-in over real HTTP."""

from __future__ import annotations

import asyncio
import email.utils
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from dataflywheel.api.app import api_key_of
from dataflywheel.errors import ConfigError, EmbeddingError
from dataflywheel.evaluation.judge import check_judge, client_judge_chat, judge_client
from dataflywheel.icl.embedders import OpenAIEmbedder
from dataflywheel.models.client import OpenAIClient, SyncOpenAIClient
from dataflywheel.models.deployments import DeploymentError, DeploymentManager
from dataflywheel.models.endpoint import MAX_RETRY_AFTER_S, EndpointError, RetryPolicy, run_blocking
from dataflywheel.models.registry import ModelSpec
from dataflywheel.models.types import ChatRequest
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import ApiSettings, JudgeSettings, Settings, secret_from_env

BASE = "http://endpoint.invalid/v1"
COMPLETION = {
    "choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}
EMBEDDINGS = {"data": [{"index": 0, "embedding": [3.0, 4.0]}], "usage": {"prompt_tokens": 1}}
MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}


class Script:
    """A MockTransport handler: the n-th request gets the n-th response (the last one repeats)."""

    def __init__(self, *responses: httpx.Response) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        scripted = self.responses[min(len(self.requests), len(self.responses)) - 1]
        return httpx.Response(scripted.status_code, headers=scripted.headers, content=scripted.content)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


class Sleeps(list[float]):
    """Records the waits between attempts instead of waiting."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def ask() -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "hi"}])


def client_of(script: Script, sleeps: Sleeps | None = None, **options: Any) -> OpenAIClient:
    return OpenAIClient(BASE, transport=script.transport, sleep=Sleeps() if sleeps is None else sleeps, **options)


# Retry-After: one parser, every call ------------------------------------------------------------------

CALLS: dict[str, tuple[Callable[[OpenAIClient], Any], dict[str, Any]]] = {
    "chat": (lambda c: c.chat(ask(), "m"), COMPLETION),
    "embeddings": (lambda c: c.embeddings(["x"], "e"), EMBEDDINGS),
    "models": (lambda c: c.models(), MODELS),
    "adapters": (lambda c: c.load_lora_adapter("mine", "/adapters/mine"), {"status": "ok"}),
}


@pytest.mark.parametrize("kind", list(CALLS))
def test_every_call_waits_at_least_what_retry_after_asks(kind: str) -> None:
    call, ok = CALLS[kind]
    script = Script(httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "7"}))
    script.responses.append(httpx.Response(200, json=ok))
    sleeps = Sleeps()
    client = client_of(script, sleeps, backoff=0.01)
    asyncio.run(call(client))
    assert len(script.requests) == 2 and len(sleeps) == 1
    assert 7.0 <= sleeps[0] < 7.1
    assert client.calls[-1].kind == kind and client.calls[-1].attempts == 2


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"retry-after-ms": "1500"}, 1.5, 1.6),
        ({"Retry-After": "2.5"}, 2.5, 2.6),
        ({"Retry-After": "3600"}, MAX_RETRY_AFTER_S, MAX_RETRY_AFTER_S),  # a server cannot park us for an hour
        ({"Retry-After": "soon"}, 0.01, 0.013),  # unreadable: the backoff alone
    ],
)
def test_retry_after_forms_and_its_cap(headers: dict[str, str], low: float, high: float) -> None:
    script = Script(httpx.Response(503, headers=headers), httpx.Response(200, json=COMPLETION))
    sleeps = Sleeps()
    asyncio.run(client_of(script, sleeps, backoff=0.01).chat(ask(), "m"))
    assert low <= sleeps[0] <= high


def test_retry_after_as_an_http_date() -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    script = Script(httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json=COMPLETION))
    sleeps = Sleeps()
    asyncio.run(client_of(script, sleeps, backoff=0.01).chat(ask(), "m"))
    assert 3.0 < sleeps[0] <= 5.0


def test_the_embedder_honours_retry_after_through_the_same_client() -> None:
    script = Script(
        httpx.Response(429, headers={"Retry-After": "4"}, json={"error": {"message": "rate limited"}}),
        httpx.Response(200, json=EMBEDDINGS),
    )
    waits: list[float] = []
    with OpenAIEmbedder(BASE, "e", transport=script.transport, sleep=waits.append, backoff=0.01) as embedder:
        vectors = embedder.embed(["x"])
    assert vectors.tolist() == [[pytest.approx(0.6), pytest.approx(0.8)]]
    assert len(waits) == 1 and waits[0] >= 4.0


# which answers are retried ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "tries"), [(408, 3), (409, 3), (425, 3), (429, 3), (500, 3), (503, 3)])
def test_timeouts_conflicts_rate_limits_and_server_errors_are_retried(status: int, tries: int) -> None:
    script = Script(httpx.Response(status, json={"error": {"message": "busy"}}))
    with pytest.raises(EndpointError, match=f"HTTP {status}: busy") as info:
        asyncio.run(client_of(script, max_retries=2).chat(ask(), "m"))
    assert len(script.requests) == tries and info.value.attempts == tries


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_fail_at_once(status: int) -> None:
    script = Script(httpx.Response(status, json={"detail": "no"}))
    sleeps = Sleeps()
    with pytest.raises(EndpointError, match=f"HTTP {status}: no") as info:
        asyncio.run(client_of(script, sleeps, max_retries=5).embeddings(["x"], "e"))
    assert len(script.requests) == 1 and sleeps == [] and info.value.status == status


def test_backoff_doubles_with_upward_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retries=5, backoff=0.5, max_backoff=1.5)
    for _ in range(50):
        first, second, third = (policy.delay(n) for n in (1, 2, 3))
        assert 0.5 <= first <= 0.6 and 1.0 <= second <= 1.2 and third == 1.5
    assert policy.delay(1, retry_after=9.0) == 9.0
    with pytest.raises(ValueError, match="give_up_after_s"):
        RetryPolicy(max_retries=None)


def test_a_deadline_bounds_the_retries_when_their_number_does_not() -> None:
    script = Script(httpx.Response(503))
    client = OpenAIClient(
        BASE, transport=script.transport, max_retries=None, backoff=0.05, max_backoff=0.05, give_up_after_s=0.3
    )
    with pytest.raises(EndpointError, match="HTTP 503"):
        asyncio.run(client.models())
    assert 3 <= len(script.requests) <= 7


def test_a_stand_in_that_fails_twice_is_retried_over_real_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", "sk-judge")
    app = create_standin_app("1", fail_first=2, model="judge")
    with BackgroundServer(app) as server:
        settings = JudgeSettings(
            enabled=True, base_url=server.base_url, model="judge", api_key_env="JUDGE_KEY_FOR_TEST"
        )
        client = judge_client(settings, backoff=0.01)
        assert asyncio.run(check_judge(client_judge_chat(client, "judge"))) is None
    assert client.stats.retries == 2 and client.stats.failures == 0
    assert app.state.standin.count == 3


# the API key ------------------------------------------------------------------------------------------


def test_the_key_is_read_from_the_named_variable_and_sent_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDPOINT_KEY_FOR_TEST", "  sk-123\n")
    script = Script(httpx.Response(200, json=MODELS))
    asyncio.run(OpenAIClient(BASE, api_key_env="ENDPOINT_KEY_FOR_TEST", transport=script.transport).models())
    assert script.requests[0].headers["Authorization"] == "Bearer sk-123"
    assert secret_from_env(None, setting="x") is None


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: OpenAIClient(BASE, api_key_env="UNSET_KEY_FOR_TEST"), "api_key_env"),
        (lambda: OpenAIEmbedder(BASE, "e", api_key_env="UNSET_KEY_FOR_TEST"), "icl.embedder.api_key_env"),
        (
            lambda: judge_client(
                JudgeSettings(enabled=True, base_url=BASE, model="j", api_key_env="UNSET_KEY_FOR_TEST")
            ),
            "judge.api_key_env",
        ),
        (lambda: secret_from_env("UNSET_KEY_FOR_TEST", setting="log_store.x"), "log_store.x"),
    ],
)
def test_an_unset_or_empty_key_variable_is_a_config_error_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[], object], named: str
) -> None:
    for value in (None, "", "   "):
        if value is None:
            monkeypatch.delenv("UNSET_KEY_FOR_TEST", raising=False)
        else:
            monkeypatch.setenv("UNSET_KEY_FOR_TEST", value)
        with pytest.raises(
            ConfigError, match=rf"^{named}: environment variable UNSET_KEY_FOR_TEST is not set or empty"
        ):
            make()


def test_callers_that_tolerate_no_key_say_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("UNSET_KEY_FOR_TEST", "")
    settings = Settings(home=tmp_path, api=ApiSettings(api_key_env="UNSET_KEY_FOR_TEST"))
    assert api_key_of(settings) is None  # the API is open (and a warning says so)
    spec = ModelSpec(name="remote", engine="openai", source=None, base_url=BASE, api_key_env="UNSET_KEY_FOR_TEST")
    with DeploymentManager(settings) as manager, pytest.raises(DeploymentError, match="UNSET_KEY_FOR_TEST"):
        manager.deploy(spec)


# typed answers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "body", "why"),
    [
        ("chat", {"choices": []}, "not a chat completion (choices: List should have at least 1 item"),
        ("chat", {"choices": [{"message": {"content": ["a"]}}]}, "choices.0.message.content"),
        ("embeddings", {"data": [{"index": 0}]}, "no embeddings in the answer (data.0.embedding: Field required)"),
        ("embeddings", {"data": [EMBEDDINGS["data"][0]] * 2}, "2 vectors for 1 inputs"),
        ("models", {"data": [{"object": "model"}]}, "no model list in the answer (data.0.id: Field required)"),
    ],
)
def test_a_2xx_body_that_is_not_the_answer_names_what_is_missing(call: str, body: Any, why: str) -> None:
    script = Script(httpx.Response(200, json=body))
    client = client_of(script)
    with pytest.raises(EndpointError, match="unexpected body") as info:
        asyncio.run(CALLS[call][0](client))
    assert why in str(info.value)
    assert info.value.status == 200 and len(script.requests) == 1  # a wrong body is not retried
    assert client.stats.failures == 1


def test_lenient_reading_of_what_servers_vary_on() -> None:
    body = {
        "choices": [
            {
                "message": {"tool_calls": [{"function": {"name": "lookup", "arguments": {"id": 7}}}]},
                "finish_reason": "function_call",
                "extra": "ignored",
            }
        ],
        "usage": {"prompt_tokens": None, "completion_tokens": "n/a"},
    }
    result = asyncio.run(client_of(Script(httpx.Response(200, json=body))).chat(ask(), "m"))
    assert result.finish_reason == "tool_calls"
    assert result.message["tool_calls"] == [
        {"id": "call_0", "type": "function", "function": {"name": "lookup", "arguments": '{"id":7}'}}
    ]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (0, 0)


def test_loading_an_adapter_the_server_already_has_is_not_an_error() -> None:
    script = Script(httpx.Response(400, json={"error": {"message": "adapter mine is already loaded"}}))
    asyncio.run(client_of(script).load_lora_adapter("mine", "/a"))
    assert script.requests[0].url.path == "/v1/load_lora_adapter"
    assert script.requests[0].content == b'{"lora_name":"mine","lora_path":"/a"}'
    refused = Script(httpx.Response(400, json={"error": {"message": "no such folder"}}))
    with pytest.raises(EndpointError, match="no such folder"):
        asyncio.run(client_of(refused).load_lora_adapter("mine", "/a"))


def test_embedding_failures_are_embedding_errors_naming_the_endpoint() -> None:
    script = Script(httpx.Response(401, json={"error": {"message": "invalid api key"}}))
    with (
        OpenAIEmbedder(BASE, "e", transport=script.transport) as embedder,
        pytest.raises(EmbeddingError, match=rf"{BASE}/embeddings failed after 1 attempt\(s\): HTTP 401"),
    ):
        embedder.embed(["x"])


# blocking calls ---------------------------------------------------------------------------------------


def test_blocking_calls_work_inside_a_running_loop_but_not_on_the_endpoint_loop() -> None:
    script = Script(httpx.Response(200, json=MODELS))
    sync = SyncOpenAIClient(client_of(script))

    async def inside() -> list[str]:
        return sync.models()

    assert asyncio.run(inside()) == ["m"]

    async def on_the_endpoint_loop() -> None:
        with pytest.raises(RuntimeError, match="await the coroutine"):
            sync.models()

    run_blocking(on_the_endpoint_loop())
    sync.close()
