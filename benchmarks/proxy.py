"""The logging proxy's added latency: streamed chat completions through ``flywheel proxy`` against the same
requests sent to the upstream directly.

    python benchmarks/proxy.py [--seconds 10] [--latency 0.05] [--concurrency 1 200]

The upstream is the stand-in big model (``serving/standin.py``) in its own process, answering each request
after ``--latency`` with a streamed tool call (8 server-sent events). The proxy is the real ``flywheel proxy``
command in its own process, logging every call into a SQLite log store and reading routes from a SQLite job
store (as configured out of the box). The load comes from this process: ``C`` concurrent streams, each sending
synthetic customer-service requests (system prompt, 4 tools; ~4.6 KB) one after another for ``--seconds``,
timing each call to its last byte. Direct and proxied runs alternate (direct, proxy, direct, proxy) and the
better of each pair's two is kept, so a burst of other work on the machine costs neither side alone.
Goal: <= 2 ms added p99.
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
    up_port, proxy_port = _free_port(), _free_port()
    upstream = subprocess.Popen([sys.executable, "-c", STANDIN, str(up_port), str(args.latency)], env=env)
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
        bodies = _bodies(500)
        direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
        proxy_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
        _loop_run(_run(proxy_url, bodies, 4, 2.0))  # warm-up: connections, the stores' first writes
        rows = []
        for concurrency in args.concurrency:
            runs: dict[str, list[list[float]]] = {"direct": [], "proxy": []}
            for _ in range(2):
                runs["direct"].append(_loop_run(_run(direct_url, bodies, concurrency, args.seconds)))
                runs["proxy"].append(_loop_run(_run(proxy_url, bodies, concurrency, args.seconds)))
            best = {k: min(v, key=lambda t: _pct(t, 0.99)) for k, v in runs.items()}
            d50, d99 = _pct(best["direct"], 0.5), _pct(best["direct"], 0.99)
            p50, p99 = _pct(best["proxy"], 0.5), _pct(best["proxy"], 0.99)
            rows.append((concurrency, len(best["direct"]), len(best["proxy"]), d50, d99, p50, p99))
        stats = httpx.get(f"http://127.0.0.1:{proxy_port}/proxy/stats").json()
    finally:
        for proc in (proxy, upstream):
            proc.terminate()
            proc.wait(timeout=20)
    print(
        f"upstream latency {args.latency * 1000:.0f} ms, streamed answers, {args.seconds:.0f} s per run, "
        f"better of 2 runs each"
    )
    print("| streams | calls direct / proxied | direct p50 / p99 ms | proxied p50 / p99 ms | added p50 / p99 ms |")
    print("|---|---|---|---|---|")
    for c, nd, np_, d50, d99, p50, p99 in rows:
        print(
            f"| {c} | {nd:,} / {np_:,} | {d50:.2f} / {d99:.2f} | {p50:.2f} / {p99:.2f} | "
            f"{p50 - d50:+.2f} / {p99 - d99:+.2f} |"
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
