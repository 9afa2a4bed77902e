"""Eval runner overhead: how close an eval gets to the endpoint's own latency bound.

    python benchmarks/eval_overhead.py [--requests 1000] [--concurrency 32] [--latency 0.1]

A local OpenAI-compatible stand-in answers every chat request after a fixed latency (100 ms). The ideal
wall time of N requests at concurrency C is N x latency / C; the eval runner (client, scoring, per-sample
storage, progress) is measured against it, and so is a bare httpx baseline run in the same process (the
same requests with nothing else around them). Target: the eval within 1.15x of the ideal.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson


def _rows(n: int) -> list[dict]:
    from dataflywheel.synth.generator import SynthConfig, generate

    return [{"record_id": f"r{i}", **rec} for i, rec in enumerate(generate(SynthConfig(records=n, seed=7)))]


async def bare_httpx(base_url: str, rows: list[dict], concurrency: int) -> float:
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:

        async def one(row: dict) -> None:
            async with semaphore:
                body = {"model": "standin", "messages": row["request"]["messages"], "tools": row["request"]["tools"]}
                (await http.post("/chat/completions", content=orjson.dumps(body))).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(one(r) for r in rows))
        return time.perf_counter() - start


async def eval_run(base_url: str, rows: list[dict], concurrency: int, out: Path) -> tuple[float, dict]:
    from dataflywheel.evaluation.runner import EvalConfig, EvalType, run_eval
    from dataflywheel.models.client import OpenAIClient

    client = OpenAIClient(base_url, max_concurrency=concurrency, max_retries=0)
    try:
        start = time.perf_counter()
        summary = await run_eval(
            rows,
            lambda request: client.chat(request, "standin"),
            out,
            EvalConfig(EvalType.BASE, "standin", concurrency=concurrency),
        )
        return time.perf_counter() - start, summary.to_dict()
    finally:
        await client.aclose()


def _runner() -> Any:
    """asyncio.run, on uvloop when it is installed (as the CLI runs evals)."""
    from dataflywheel.evaluation.runner import run_async

    return run_async


def _reply(body: dict) -> dict:
    """The first offered tool, called with no arguments."""
    name = body["tools"][0]["function"]["name"] if body.get("tools") else "none"
    return {
        "content": None,
        "tool_calls": [{"id": "call_0", "type": "function", "function": {"name": name, "arguments": "{}"}}],
    }


def _serve(latency: float, ready: Any) -> None:
    import threading

    from dataflywheel.serving.background import BackgroundServer
    from dataflywheel.serving.standin import create_standin_app

    with BackgroundServer(create_standin_app(_reply, latency_s=latency, keep_requests=0)) as server:
        ready.put(server.base_url)
        threading.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    rows = _rows(args.requests)
    ideal = args.requests * args.latency / args.concurrency
    # The stand-in runs in its own process, as a real endpoint would: it must not share our GIL.
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(args.latency, ready), daemon=True)
    proc.start()
    base_url = ready.get(timeout=60)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = _runner()
            run(bare_httpx(base_url, rows[: args.concurrency], args.concurrency))  # warm up
            bare = run(bare_httpx(base_url, rows, args.concurrency))
            wall, summary = run(eval_run(base_url, rows, args.concurrency, Path(tmp)))
    finally:
        proc.terminate()
        proc.join()

    table = Table(
        title=f"{args.requests} requests, concurrency {args.concurrency}, "
        f"{args.latency * 1000:.0f} ms endpoint latency",
        title_justify="left",
    )
    for col in ("run", "wall s", "x ideal"):
        table.add_column(col, justify="right" if col != "run" else "left")
    table.add_row("ideal (N x latency / C)", f"{ideal:.2f}", "1.00")
    table.add_row("bare httpx, same process", f"{bare:.2f}", f"{bare / ideal:.3f}")
    table.add_row("[bold]eval runner", f"[bold]{wall:.2f}", f"[bold]{wall / ideal:.3f}")
    Console().print(table)
    print(
        f"samples {summary['samples']}, errors {summary['errors']}; "
        f"eval / bare httpx = {wall / bare:.3f}; target: eval <= 1.15 x ideal -> "
        f"{'met' if wall / ideal <= 1.15 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
