"""Fixtures of the proxy tests: the stand-in big model as the upstream (a real HTTP server), the proxy in front
of it over a real SQLite log store, and a helper to read what was logged."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataflywheel.logstore import open_log_store
from dataflywheel.logstore.base import LogQuery
from dataflywheel.proxy.app import create_proxy_app
from dataflywheel.proxy.forwarder import Endpoint
from dataflywheel.proxy.logwriter import LogWriter
from dataflywheel.proxy.routing import RouteCache, RouteLookup
from dataflywheel.serving.background import BackgroundServer
from dataflywheel.serving.standin import create_standin_app
from dataflywheel.settings import Settings, load_settings

WORKLOAD, CLIENT = "wl-proxy", "client-p"
HEADERS = {"X-Flywheel-Workload": WORKLOAD, "X-Flywheel-Client": CLIENT}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    }
    for name in ("ToOrderStatus", "ToReturnProcessing")
]


def teacher_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The stand-in big model: a return question goes to ToReturnProcessing, anything else to ToOrderStatus."""
    text = str(body["messages"][-1]["content"])
    name = "ToReturnProcessing" if "return" in text else "ToOrderStatus"
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": name, "arguments": f'{{"query": "{text[:30]}"}}'}}
        ],
    }


def chat_body(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "big-model", "messages": [{"role": "user", "content": text}], "tools": TOOLS, **extra}


@dataclass
class Proxy:
    url: str
    upstream: BackgroundServer
    writer: LogWriter
    settings: Settings

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/proxy/stats").json()  # type: ignore[no-any-return]

    def wait_logged(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The logged records of the test workload once there are ``n``, newest first."""
        deadline = time.monotonic() + timeout
        while True:
            with open_log_store(self.settings) as store:
                rows = [r for _, r in store.iter_records(LogQuery(WORKLOAD, CLIENT))]
            if len(rows) >= n or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


SALT_ENV = "FLYWHEEL_TEST_PROXY_SALT"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Embedded defaults with a salt from the environment (as a deployment of several proxies sets it)."""
    monkeypatch.setenv(SALT_ENV, "proxy-tests-salt-0123456789")
    return load_settings(home=tmp_path / "home", privacy={"salt_env": SALT_ENV})


@pytest.fixture
def upstream() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_standin_app(teacher_answer, model="big-model")) as server:
        yield server


def start_proxy(
    upstream_url: str,
    settings: Settings,
    *,
    writer: LogWriter | None = None,
    lookup: RouteLookup | None = None,
) -> tuple[BackgroundServer, LogWriter]:
    writer = writer or LogWriter(lambda: open_log_store(settings), flush_interval_s=0.05)
    app = create_proxy_app(Endpoint(upstream_url), routes=RouteCache(lookup, ttl_s=0.2), writer=writer)
    return BackgroundServer(app), writer


@pytest.fixture
def make_proxy(upstream: BackgroundServer, settings: Settings) -> Iterator[Callable[..., Proxy]]:
    servers: list[BackgroundServer] = []

    def make(**kwargs: Any) -> Proxy:
        server, writer = start_proxy(upstream.base_url, settings, **kwargs)
        servers.append(server.__enter__())
        return Proxy(server.url, upstream, writer, settings)

    yield make
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def proxy(make_proxy: Callable[..., Proxy]) -> Proxy:
    return make_proxy()
