"""The proxy of a settings object: the upstream from ``proxy.upstream_url`` (or ``--upstream``), calls logged
into the configured log store, routes read from the job store."""

from __future__ import annotations

import threading

from fastapi import FastAPI

from dataflywheel.errors import ConfigError
from dataflywheel.jobs.routes import RouteEventRecord
from dataflywheel.jobs.store import JobStore
from dataflywheel.logstore import open_log_store
from dataflywheel.proxy.app import ProxyState, proxy_app
from dataflywheel.proxy.forwarder import Endpoint
from dataflywheel.proxy.logwriter import LogWriter
from dataflywheel.proxy.routing import RouteCache, RouteLookup
from dataflywheel.settings import Settings, secret_from_env


class StoredRoutes:
    """``current_route`` of the job store, opened on first use and again after a failure (a job store that is
    down at start-up does not stop the proxy: it routes every call to the upstream meanwhile)."""

    def __init__(self, settings: Settings, store: JobStore | None = None) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()

    def __call__(self, workload_id: str, client_id: str) -> RouteEventRecord | None:
        with self._lock:
            if self._store is None:
                self._store = JobStore.from_settings(self._settings)
            store = self._store
        return store.current_route(workload_id, client_id)


def upstream_of(settings: Settings, upstream_url: str | None = None) -> Endpoint:
    url = upstream_url or settings.proxy.upstream_url
    if not url:
        raise ConfigError("proxy.upstream_url: no upstream: set it or pass --upstream URL")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"proxy.upstream_url: expected an http(s) URL ending in /v1, got {url!r}")
    key = secret_from_env(settings.proxy.upstream_api_key_env, setting="proxy.upstream_api_key_env")
    return Endpoint(url, key)


def proxy_state(settings: Settings, upstream_url: str | None = None, lookup: RouteLookup | None = None) -> ProxyState:
    """The proxy of ``settings``: calls logged into the configured log store, routes read through ``lookup``."""
    cfg = settings.proxy
    writer = LogWriter(
        lambda: open_log_store(settings),
        queue_size=cfg.queue_size,
        batch_size=cfg.batch_size,
        flush_interval_s=cfg.flush_interval_s,
    )
    return ProxyState(
        upstream_of(settings, upstream_url),
        RouteCache(lookup, cfg.route_ttl_s),
        writer,
        cfg.canary_compare,
        cfg.timeout_s,
    )


def build_proxy_app(settings: Settings, upstream_url: str | None = None, *, store: JobStore | None = None) -> FastAPI:
    """The proxy app of ``settings`` (``flywheel proxy``): routes from the job store of the settings."""
    return proxy_app(proxy_state(settings, upstream_url, StoredRoutes(settings, store)))
