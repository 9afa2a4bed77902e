"""The logging proxy's added latency: streamed chat completions through ``flywheel proxy`` against the same
requests sent to the upstream directly.

    python benchmarks/proxy.py [--seconds 10] [--latency 0.05] [--concurrency 1 200]

The upstream is the stand-in big model (``serving/standin.py``) in its own process, answering each request
after ``--latency`` with a streamed tool call (8 server-sent events). The proxy is the real ``flywheel proxy``
command in its own process, logging every call into a SQLite log store and reading routes from a SQLite job
store (as configured out of the box). The load comes from this process: ``C`` concurrent streams, each sending
synthetic customer-service requests (system prompt, 4 tools; ~4.6 KB) one after another for ``--seconds``,
timing each call to its last byte.

The floor: the least any Python proxy on the same stack adds, a pass-through written as a bare ASGI app (no
framework, no logging, no routing, no parsing) on the same server (uvicorn) and client (httpx), in its own
process. Direct, floor and proxied runs alternate (twice each) and the better of each's two is kept, so a
burst of other work on the machine costs no side alone. Goal: <= 2 ms added p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

STANDIN = """
import sys, uvicorn
from dataflywheel.serving.standin import create_standin_app
call = {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "ToOrderStatus", "arguments": '{"query": "where is order 4165", "user_id": "4165"}'}}]}
uvicorn.run(create_standin_app(call, latency_s=float(sys.argv[2]), keep_requests=0), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning")
"""

# The floor: a bare pass-through (status, content type and body chunks; nothing else).
FLOOR = """
import sys, httpx, uvicorn
upstream = sys.argv[2] + "/chat/completions"
client = httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None, max_keepalive_connections=1000))
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    request = client.build_request("POST", upstream, content=body, headers={"content-type": "application/json"})
    reply = await client.send(request, stream=True)
    headers = [(b"content-type", reply.headers.get("content-type", "").encode())]
    await send({"type": "http.response.start", "status": reply.status_code, "headers": headers})
    async for chunk in reply.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await reply.aclose()
    await send({"type": "http.response.body", "body": b""})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")
"""


def _free_port() -> int:
    from dataflywheel.models.deployments import free_port

    return free_port()


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not start")


def _bodies(n: int) -> list[bytes]:
    from dataflywheel.synth.generator import SynthConfig, generate

    return [
        orjson.dumps({**rec["request"], "stream": True, "max_tokens": 64})
        for rec in generate(SynthConfig(records=n, seed=11))
    ]


async def _run(url: str, bodies: list[bytes], concurrency: int, seconds: float) -> list[float]:
    headers = {"content-type": "application/json", "x-flywheel-workload": "bench", "x-flywheel-client": "bench"}
    times: list[float] = []
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency + 10)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        stop = time.monotonic() + seconds

        async def stream(worker: int) -> None:
            i = worker
            while time.monotonic() < stop:
                started = time.perf_counter()
                try:
                    async with client.stream("POST", url, content=bodies[i % len(bodies)], headers=headers) as reply:
                        async for _ in reply.aiter_raw():
                            pass
                        ok = reply.status_code == 200
                except httpx.HTTPError as exc:
                    ok = False
                    ERRORS.append(f"{url}: {type(exc).__name__}: {exc}")
                if ok:
                    times.append(time.perf_counter() - started)
                i += concurrency

        await asyncio.gather(*(stream(w) for w in range(concurrency)))
    return times


ERRORS: list[str] = []


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _loop_run(coro: object) -> list[float]:
    try:
        import uvloop

        return uvloop.run(coro)  # type: ignore[arg-type, no-any-return]
    except ImportError:
        return asyncio.run(coro)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="Each run's length.")
    parser.add_argument("--latency", type=float, default=0.05, help="The upstream's latency per call (s).")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 200])
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="proxy-bench-"))
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_PRIVACY__SALT_ENV": "BENCH_SALT",
        "BENCH_SALT": "benchmark-salt-0123456789",
    }
    up_port, proxy_port, floor_port = _free_port(), _free_port(), _free_port()
    upstream = subprocess.Popen([sys.executable, "-c", STANDIN, str(up_port), str(args.latency)], env=env)
    floor = subprocess.Popen([sys.executable, "-c", FLOOR, str(floor_port), f"http://127.0.0.1:{up_port}/v1"])
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataflywheel.cli.main",
            "proxy",
            "--upstream",
            f"http://127.0.0.1:{up_port}/v1",
            "--port",
            str(proxy_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait(f"http://127.0.0.1:{up_port}/v1/models", upstream)
        _wait(f"http://127.0.0.1:{proxy_port}/health", proxy)
        _wait(f"http://127.0.0.1:{floor_port}/health", floor)
        bodies = _bodies(500)
        urls = {
            name: f"http://127.0.0.1:{port}/v1/chat/completions"
            for name, port in (("direct", up_port), ("floor", floor_port), ("proxy", proxy_port))
        }
        for url in urls.values():
            _loop_run(_run(url, bodies, 4, 2.0))  # warm-up: connections, the stores' first writes
        rows = []
        for concurrency in args.concurrency:
            runs: dict[str, list[list[float]]] = {name: [] for name in urls}
            for _ in range(2):
                for name, url in urls.items():
                    runs[name].append(_loop_run(_run(url, bodies, concurrency, args.seconds)))
            best = {k: min(v, key=lambda t: _pct(t, 0.99)) for k, v in runs.items()}
            rows.append((concurrency, {k: (len(t), _pct(t, 0.5), _pct(t, 0.99)) for k, t in best.items()}))
        stats = httpx.get(f"http://127.0.0.1:{proxy_port}/proxy/stats").json()
    finally:
        for proc in (proxy, floor, upstream):
            proc.terminate()
            proc.wait(timeout=20)
    print(
        f"upstream latency {args.latency * 1000:.0f} ms, streamed answers, {args.seconds:.0f} s per run, "
        f"better of 2 runs each"
    )
    print(
        "| streams | calls direct / floor / proxied | direct p50 / p99 ms | added by the floor p50 / p99 ms "
        "| added by flywheel proxy p50 / p99 ms |"
    )
    print("|---|---|---|---|---|")
    for c, r in rows:
        (nd, d50, d99), (nf, f50, f99), (np_, p50, p99) = r["direct"], r["floor"], r["proxy"]
        print(
            f"| {c} | {nd:,} / {nf:,} / {np_:,} | {d50:.2f} / {d99:.2f} | {f50 - d50:+.2f} / {f99 - d99:+.2f} "
            f"| {p50 - d50:+.2f} / {p99 - d99:+.2f} |"
        )
    if ERRORS:
        print(f"{len(ERRORS)} call(s) failed, left out; first: {ERRORS[0]}")
    log = stats["log"]
    print(
        f"logged: {log['written']:,} written, {log['dropped_queue_full']:,} dropped (queue full), "
        f"{log['failed']:,} failed, {log['batches']:,} batches; calls: {stats['calls']['requests']:,}"
    )


if __name__ == "__main__":
    main()
