"""Attribution of a call to a workload and client, and the per-request choice of who answers."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import orjson
import pytest

from dataflywheel.jobs.routes import RouteAction, RouteEventRecord, RouteMode, RouteTarget
from dataflywheel.proxy.attribution import Attribution, attribute
from dataflywheel.proxy.routing import TEACHER_ONLY, RouteCache, choose, share_point
from dataflywheel.records.provenance import Answerer


def test_headers_give_workload_and_client() -> None:
    headers = {"x-flywheel-workload": "wl", "x-flywheel-client": "cl"}
    body = {"metadata": {"workload_id": "other", "client_id": "other"}}
    assert attribute(headers, body) == Attribution("wl", "cl")  # headers win


def test_metadata_gives_what_the_headers_do_not() -> None:
    body = {"metadata": {"workload_id": "wl-m", "client_id": "cl-m"}}
    assert attribute({}, body) == Attribution("wl-m", "cl-m")
    assert attribute({"x-flywheel-client": "cl-h"}, body) == Attribution("wl-m", "cl-h")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, {}),
        ({"x-flywheel-workload": "wl"}, {}),
        ({}, {"metadata": "not an object"}),
        ({"x-flywheel-workload": "wl", "x-flywheel-client": "x" * 256}, {}),
        ({"x-flywheel-workload": "wl", "x-flywheel-client": "  "}, {}),
        ({}, {"metadata": {"workload_id": "wl", "client_id": "a\x00b"}}),
        ({}, {"metadata": {"workload_id": 7, "client_id": "c"}}),
    ],
)
def test_a_call_without_a_valid_workload_and_client_is_unattributed(headers: dict[str, str], body: dict) -> None:  # type: ignore[type-arg]
    assert attribute(headers, body) is None


def test_an_invalid_header_falls_back_to_the_metadata() -> None:
    body = {"metadata": {"workload_id": "wl-m", "client_id": "cl-m"}}
    assert attribute({"x-flywheel-workload": "x" * 300}, body) == Attribution("wl-m", "cl-m")


def route(
    mode: RouteMode | None, share: float | None = None, action: RouteAction = RouteAction.PROMOTE
) -> RouteEventRecord:
    return RouteEventRecord(
        id=1,
        workload_id="wl",
        client_id="cl",
        ts=datetime.now(UTC),
        action=action,
        mode=mode,
        canary_share=share,
        target=RouteTarget("http://127.0.0.1:1/v1", "cand") if action is RouteAction.PROMOTE else None,
        job_id=None,
        candidate="cand",
        eval_type="customized",
        override=False,
        reason="",
    )


def test_no_route_or_a_rollback_goes_to_the_big_model() -> None:
    assert choose(None, b"x") == TEACHER_ONLY
    assert choose(route(None, action=RouteAction.ROLLBACK), b"x") == TEACHER_ONLY


def test_shadow_returns_the_big_models_answer_and_asks_the_candidate_too() -> None:
    choice = choose(route(RouteMode.SHADOW), b"x")
    assert choice.answerer is Answerer.TEACHER and choice.also_ask_other


def test_full_sends_everything_to_the_candidate() -> None:
    choice = choose(route(RouteMode.FULL), b"x")
    assert choice.answerer is Answerer.CANDIDATE and not choice.also_ask_other


def test_canary_is_deterministic_per_request_and_near_its_share() -> None:
    rng = random.Random(5)
    bodies = [orjson.dumps({"messages": [{"role": "user", "content": f"q{rng.random()}"}]}) for _ in range(4000)]
    for share in (0.0, 0.1, 0.5, 1.0):
        picked = [choose(route(RouteMode.CANARY, share), b).answerer is Answerer.CANDIDATE for b in bodies]
        assert picked == [choose(route(RouteMode.CANARY, share), b).answerer is Answerer.CANDIDATE for b in bodies]
        fraction = sum(picked) / len(bodies)
        # binomial: 4 standard deviations of 4,000 draws is at most 0.032
        assert abs(fraction - share) <= 0.032, (share, fraction)
    assert 0.0 <= share_point(b"") < 1.0


def test_canary_compare_asks_the_big_model_for_the_candidates_requests() -> None:
    body = next(b for i in range(100) if share_point(b := f"{i}".encode()) < 0.5)
    assert choose(route(RouteMode.CANARY, 0.5), body).also_ask_other
    assert not choose(route(RouteMode.CANARY, 0.5), body, canary_compare=False).also_ask_other


def test_the_route_cache_refreshes_in_the_background_so_calls_do_not_wait_for_the_store() -> None:
    """Only a key's first call reads the job store on its path; later ones find the route fresh (the
    refresher re-reads it each ttl/2, slowly here: 150 ms a lookup), a change is seen within the ttl, and a
    store that fails keeps the last route."""
    current: list[RouteEventRecord | None] = [None]
    fail = [False]

    def lookup(workload: str, client: str) -> RouteEventRecord | None:
        time.sleep(0.15)
        if fail[0]:
            raise OSError("job store down")
        return current[0]

    async def scenario() -> None:
        cache = RouteCache(lookup, ttl_s=0.5)
        cache.start()
        who = Attribution("wl", "cl")
        try:
            assert await cache.get(who) is None and cache.waited == 1
            slowest = 0.0
            for _ in range(120):  # 1.2 s: more than two ttls
                started = time.perf_counter()
                assert await cache.get(who) is None
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.01)
            # a call that waited for the store would take its 150 ms; a loaded machine may stall one for some ms
            assert cache.waited == 1 and slowest < 0.1, (cache.waited, slowest)
            assert cache.lookups >= 3  # the refresher kept reading it
            current[0] = route(RouteMode.FULL)
            await asyncio.sleep(0.5 + 0.1)
            assert await cache.get(who) == current[0]
            fail[0] = True
            await asyncio.sleep(0.6)
            assert await cache.get(who) == current[0] and cache.errors >= 1
        finally:
            await cache.stop()

    asyncio.run(scenario())
