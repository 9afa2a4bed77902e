"""Server time of the web page: a job page with 3 candidates x 3 evals (target < 300 ms), the jobs list,
the sample browser's part and the report.

    python benchmarks/web.py [--requests 50]

The job is the finished job of the web tests (``tests/helpers/dashboard_job.py``: a real dataset build, 9
real evals of 30 samples over a scripted candidate, the real finalize stage, cost, latency and a
recommendation). The app runs in uvicorn on a loopback port (a thread of this process) and is asked over real
HTTP, one request at a time after a warm-up. The figure is the page's own ``Server-Timing`` (reading the job
store, the dataset manifest and the samples, and rendering), and the wall time a client sees.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.helpers.dashboard_job import build_finished_job  # noqa: E402

from dataflywheel.api import create_api  # noqa: E402
from dataflywheel.serving.background import BackgroundServer  # noqa: E402

TARGET_MS = 300.0


def measure(http: httpx.Client, path: str, n: int) -> tuple[list[float], list[float]]:
    """(server ms, wall ms) of ``n`` GETs of ``path`` after 3 warm-up requests."""
    for _ in range(3):
        http.get(path).raise_for_status()
    server, wall = [], []
    for _ in range(n):
        start = time.perf_counter()
        reply = http.get(path)
        wall.append((time.perf_counter() - start) * 1000)
        reply.raise_for_status()
        server.append(float(reply.headers["server-timing"].split("dur=")[1]))
    return server, wall


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50, help="Requests per page (after 3 warm-up ones).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flywheel-web-bench-") as tmp:
        start = time.perf_counter()
        job = build_finished_job(Path(tmp) / "home")
        print(f"built the finished job (3 candidates x 3 evals) in {time.perf_counter() - start:.1f} s")
        app = create_api(job.settings, start_jobs=False, recover=False)
        gc.collect()
        gc.freeze()  # as flywheel serve does
        pages = {
            "job page (3 x 3)": f"/jobs/{job.job_id}",
            "job page, wrong-tool samples": f"/jobs/{job.job_id}?verdict=wrong_tool",
            "samples part": f"/jobs/{job.job_id}/partials/samples?eval_type=icl-eval",
            "live part (polled)": f"/jobs/{job.job_id}/partials/live",
            "jobs list": "/",
            "report": f"/jobs/{job.job_id}/report.html",
        }
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            print(
                f"{'page':<30} {'server p50':>11} {'p95':>8} {'max':>8} {'wall p50':>9}  (ms, {args.requests} requests)"
            )
            worst = 0.0
            for name, path in pages.items():
                server_ms, wall_ms = measure(http, path, args.requests)
                print(
                    f"{name:<30} {statistics.median(server_ms):>11.1f} {p(server_ms, 0.95):>8.1f} "
                    f"{max(server_ms):>8.1f} {statistics.median(wall_ms):>9.1f}"
                )
                if name.startswith("job page"):
                    worst = max(worst, p(server_ms, 0.95))
        verdict = "meets" if worst < TARGET_MS else "MISSES"
        print(f"job page p95 server time {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")


if __name__ == "__main__":
    main()
