"""Which model answers a proxied request: the workload's current route (read from the job store, cached for
``proxy.route_ttl_s``) and a pure choice per request."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

from dataflywheel.jobs.routes import RouteEventRecord, RouteMode
from dataflywheel.proxy.attribution import Attribution
from dataflywheel.records.provenance import Answerer

logger = logging.getLogger(__name__)

RouteLookup = Callable[[str, str], RouteEventRecord | None]
"""``(workload_id, client_id) -> current route`` (blocking: the job store's ``current_route``)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """Who answers the caller, and whether the other model is asked too (off the caller's path)."""

    answerer: Answerer
    also_ask_other: bool


TEACHER_ONLY = Choice(Answerer.TEACHER, also_ask_other=False)


def share_point(request: bytes) -> float:
    """Where a request falls in [0, 1): a hash of its bytes, so the same request always goes the same way."""
    digest = hashlib.blake2b(request, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def choose(route: RouteEventRecord | None, request: bytes, *, canary_compare: bool = True) -> Choice:
    """Who answers ``request`` under ``route`` (None or a rollback: the big model alone)."""
    if route is None or not route.active:
        return TEACHER_ONLY
    if route.mode is RouteMode.SHADOW:
        return Choice(Answerer.TEACHER, also_ask_other=True)
    if route.mode is RouteMode.FULL:
        return Choice(Answerer.CANDIDATE, also_ask_other=False)
    share = route.canary_share if route.canary_share is not None else 0.0
    if share_point(request) < share:
        return Choice(Answerer.CANDIDATE, also_ask_other=canary_compare)
    return TEACHER_ONLY


class RouteCache:
    """The current route of each workload and client, read through ``lookup``; a route change is seen within
    ``ttl_s``.

    Once started (:meth:`start`, with the proxy), a background task re-reads every recently used key each
    ``ttl_s / 2``, so a call finds its route fresh and never waits for the job store; only a key's first call
    (or one after the refresher fell behind) reads it on the call's path. A lookup that fails keeps the last
    known route (or none) and is counted: the job store being down never fails a proxied call."""

    def __init__(self, lookup: RouteLookup | None, ttl_s: float = 1.0, forget_after_s: float = 300.0) -> None:
        self._lookup = lookup
        self.ttl_s = ttl_s
        self.forget_after_s = forget_after_s
        """A key no call has asked for this long is no longer refreshed."""
        self._cache: dict[tuple[str, str], tuple[float, RouteEventRecord | None]] = {}
        self._used: dict[tuple[str, str], float] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._refresher: asyncio.Task[None] | None = None
        self.lookups = 0
        self.errors = 0
        self.waited = 0
        """Calls that waited for a lookup (a key's first call, or the refresher behind)."""

    def _fresh(self, key: tuple[str, str]) -> tuple[float, RouteEventRecord | None] | None:
        """The cached ``(read at, route)`` of ``key`` while younger than ``ttl_s``."""
        cached = self._cache.get(key)
        return cached if cached is not None and time.monotonic() - cached[0] < self.ttl_s else None

    async def get(self, who: Attribution) -> RouteEventRecord | None:
        if self._lookup is None:
            return None
        key = (who.workload_id, who.client_id)
        self._used[key] = time.monotonic()
        fresh = self._fresh(key)
        if fresh is not None:
            return fresh[1]
        self.waited += 1
        return await self._refresh(key, only_if_stale=True)

    async def _refresh(self, key: tuple[str, str], *, only_if_stale: bool) -> RouteEventRecord | None:
        assert self._lookup is not None
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one lookup per key at a time; the others wait for it
            if only_if_stale:
                fresh = self._fresh(key)
                if fresh is not None:
                    return fresh[1]
            cached = self._cache.get(key)
            self.lookups += 1
            try:
                route = await asyncio.to_thread(self._lookup, *key)
            except Exception as exc:
                self.errors += 1
                logger.warning("proxy: cannot read the route of %s/%s: %s", *key, exc)
                route = cached[1] if cached is not None else None
            self._cache[key] = (time.monotonic(), route)
            return route

    def start(self) -> None:
        """Start refreshing the used keys in the background (in the running event loop)."""
        if self._lookup is not None and self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="proxy-route-refresher")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 2)
            now = time.monotonic()
            for key, used in list(self._used.items()):
                if now - used > self.forget_after_s:
                    del self._used[key]
                    self._cache.pop(key, None)
                    self._locks.pop(key, None)
                    continue
                cached = self._cache.get(key)
                if cached is None or now - cached[0] >= self.ttl_s / 2:
                    await self._refresh(key, only_if_stale=False)
