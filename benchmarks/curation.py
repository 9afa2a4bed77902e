"""Curation throughput and memory: our dataset build vs a blueprint-style baseline, on the same data.

    python benchmarks/curation.py [--records 100000] [--runs 3]

Generates N synthetic customer-service records (~4.6 KB each: system prompt + 4 tool schemas, like the
blueprint's AIVA sample) into a JSONL file, then builds datasets (eval 100, uniform ICL, train/val) from it
end to end: JSONL parse through written dataset files. Each build runs in a fresh child process (so its peak
memory is its own), alternating ours and the baseline; the best of ``--runs`` is reported with the ratio.

The baseline does what the blueprint's curation does (section 3-4 of the reference): parse every record
into memory with ``json``, validate, filter, dedup, sample, stratified split, ``deepcopy`` into training
rows, format and estimate tokens of every training example for uniform ICL, ``json.dumps`` the files.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import multiprocessing
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

WORKLOAD = {"workload_id": "primary_assistant", "client_id": "northwind-1"}


# ---- ours ---------------------------------------------------------------------------------------------
def run_ours(path: str, home: str, records: int) -> dict[str, Any]:
    from dataflywheel.datasets.build import build_datasets
    from dataflywheel.datasets.sources import JsonlSource
    from dataflywheel.settings import load_settings, with_overrides

    settings = with_overrides(load_settings(home=Path(home)), data_split={"limit": records, "eval_size": 100})
    start = time.perf_counter()
    result = build_datasets(JsonlSource(path), settings, **WORKLOAD)
    total = time.perf_counter() - start
    return {
        "total_s": total,
        "stages_s": {k: v for k, v in result.timings.items() if k != "total"},
        "selected": result.counts["selected"],
        "peak_rss_mb": _rss_mb(),
        "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def parse_only(path: str) -> float:
    import orjson

    start = time.perf_counter()
    with open(path, "rb", buffering=1 << 20) as f:
        for line in f:
            orjson.loads(line)
    return time.perf_counter() - start


def inspect_only(path: str) -> float:
    from dataflywheel.curation.inspect import InspectConfig
    from dataflywheel.datasets.scan import scan_batches
    from dataflywheel.datasets.sources import JsonlSource
    from dataflywheel.settings import DataSplitSettings

    start = time.perf_counter()
    for _ in scan_batches(JsonlSource(path), InspectConfig.of(DataSplitSettings()), workers=0):
        pass
    return time.perf_counter() - start


# ---- the blueprint-style baseline -----------------------------------------------------------------------
DEFAULT_SYSTEM_MESSAGE = (
    "You are a helpful assistant that can answer questions and help with tasks.\n"
    "Here are some examples of how you should respond to different types of requests:"
)


def _tool_name(r: dict[str, Any]) -> str:
    try:
        return str(r["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["name"])
    except (KeyError, IndexError, TypeError):
        return "no_tool"


def _valid(r: dict[str, Any]) -> bool:
    try:
        req, resp = r["request"], r["response"]
        if not isinstance(req.get("messages"), list) or not req["messages"]:
            return False
        for tool in req.get("tools") or []:
            if len(tool["function"]["parameters"]["properties"]) > 8:
                return False
        return bool(resp["choices"]) and all("message" in c for c in resp["choices"])
    except Exception:
        return False


def _estimate_tokens(text: str) -> int:
    n = int(len(text.split()) * 1.5)
    return n + (n * 20) // 100


def _format_example(r: dict[str, Any]) -> str:
    msgs = "".join(f"{m['role']}: {m.get('content')}\n\n" for m in r["request"]["messages"])
    msg = r["response"]["choices"][0]["message"]
    resp = f"{msg['role']}: {msg.get('content')}"
    if msg.get("tool_calls"):
        resp += "\nTool calls:\n" + json.dumps(msg["tool_calls"], indent=2)
    return "For example, if the conversation looks like this:\n" + msgs + "\nThen you'll respond with:\n" + resp


def _stratified(records: list[dict[str, Any]], n_take: int, rng: random.Random) -> tuple[list[Any], list[Any]]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        groups[_tool_name(r)].append(r)
    taken, rest = [], []
    for _, members in sorted(groups.items()):
        rng.shuffle(members)
        k = round(n_take * len(members) / len(records))
        taken += members[:k]
        rest += members[k:]
    return taken, rest


def run_baseline(path: str, out: str, records: int) -> dict[str, Any]:
    stages: dict[str, float] = {}
    t = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        data = []
        for line in f:
            with contextlib.suppress(json.JSONDecodeError):
                data.append(json.loads(line))
    stages["parse"] = time.perf_counter() - t

    t = time.perf_counter()
    valid = [r for r in data if _valid(r)]
    kept = []
    for r in valid:
        calls = r["response"]["choices"][0]["message"].get("tool_calls") or []
        if not calls or any(c.get("type") != "function" for c in calls):
            continue
        try:
            for c in calls:
                if isinstance(c["function"]["arguments"], str):
                    c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        except json.JSONDecodeError:
            continue
        kept.append(r)
    seen, dedup = set(), []
    for r in kept:
        key = tuple(m["content"] for m in r["request"]["messages"] if m["role"] == "user" and m.get("content"))
        if key in seen:
            continue
        seen.add(key)
        dedup.append(r)
    rng = random.Random(42)
    selected = rng.sample(dedup, min(records, len(dedup)))
    stages["curate"] = time.perf_counter() - t

    t = time.perf_counter()
    eval_set, rest = _stratified(selected, 100, rng)
    val, train = _stratified(rest, math.ceil(0.1 * len(rest)), rng)
    stages["split"] = time.perf_counter() - t

    t = time.perf_counter()
    groups: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for r in train:
        text = _format_example(r)
        groups[_tool_name(r)].append((text, _estimate_tokens(text)))
    examples = []
    for _, items in groups.items():
        items.sort(key=lambda x: x[1])
        examples.append(items[0][0])
    icl = []
    for r in eval_set:
        new = copy.deepcopy(r)
        sysmsg = new["request"]["messages"][0]
        sysmsg["content"] = DEFAULT_SYSTEM_MESSAGE + "\n\n" + "\n\n".join(examples[:3]) + "\n\n" + sysmsg["content"]
        icl.append(new)
    stages["icl"] = time.perf_counter() - t

    t = time.perf_counter()

    def training_rows(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for r in rs:
            msgs = copy.deepcopy(r["request"]["messages"])
            answer = r["response"]["choices"][0]["message"]
            answer["content"] = ""
            rows.append({"messages": [*msgs, answer], "tools": r["request"]["tools"]})
        return rows

    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    for name, rows in (("eval", eval_set), ("icl", icl), ("train", training_rows(train)), ("val", training_rows(val))):
        (target / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    stages["write"] = time.perf_counter() - t
    return {"total_s": sum(stages.values()), "stages_s": stages, "selected": len(selected), "peak_rss_mb": _rss_mb()}


# ---- harness ----------------------------------------------------------------------------------------------
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(kind: str, path: str, out: str, records: int, queue: Any) -> None:
    fn = run_ours if kind == "ours" else run_baseline
    queue.put(fn(path, out, records))


def in_child(kind: str, path: str, out: str, records: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(kind, path, out, records, queue))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="builds of each kind; the best is reported")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from dataflywheel.synth.generator import SynthConfig, write_jsonl

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    try:
        data = work / "traffic.jsonl"
        t = time.perf_counter()
        summary = write_jsonl(
            SynthConfig(records=args.records, seed=args.seed, duplicate_rate=0.02, text_answer_rate=0.02), data
        )
        console.print(
            f"generated {summary.records:,} records, {summary.bytes_written / 1e6:.0f} MB "
            f"({summary.bytes_written / summary.records / 1e3:.2f} KB/record) in {time.perf_counter() - t:.1f} s"
        )
        parse_s, inspect_s = parse_only(str(data)), inspect_only(str(data))

        ours, base = [], []
        for i in range(args.runs):
            ours.append(in_child("ours", str(data), str(work / f"ours-{i}"), args.records))
            if not args.no_baseline:
                base.append(in_child("baseline", str(data), str(work / f"base-{i}"), args.records))
        best = min(ours, key=lambda r: r["total_s"])
        n = args.records

        table = Table(title=f"Dataset build from {n:,} JSONL records (best of {args.runs})", title_justify="left")
        table.add_column("stage")
        table.add_column("ours records/s", justify="right")
        table.add_column("baseline records/s", justify="right")
        b = min(base, key=lambda r: r["total_s"]) if base else None

        def rate(seconds: float | None) -> str:
            return f"{n / seconds:,.0f}" if seconds else "-"

        table.add_row("JSON parse only (orjson, 1 process)", rate(parse_s), rate(b["stages_s"]["parse"]) if b else "-")
        table.add_row("parse + inspect (1 process)", rate(inspect_s), "-")
        if b:  # the baseline's parse and curate steps together are what our scan does
            b["stages_s"]["scan"] = b["stages_s"]["parse"] + b["stages_s"]["curate"]
        for stage in ("scan", "split", "icl", "write"):
            label = "build: scan (read, parse, validate, dedup)" if stage == "scan" else f"build: {stage}"
            table.add_row(label, rate(best["stages_s"].get(stage)), rate(b["stages_s"].get(stage)) if b else "-")
        table.add_row("[bold]end to end", f"[bold]{rate(best['total_s'])}", f"[bold]{rate(b['total_s'])}" if b else "-")
        table.add_row(
            "peak memory (MB)",
            f"{best['peak_rss_mb']:.0f} (+ workers {best['worker_peak_rss_mb']:.0f} each)",
            f"{b['peak_rss_mb']:.0f}" if b else "-",
        )
        console.print(table)
        console.print("ours, every run (s): " + ", ".join(f"{r['total_s']:.2f}" for r in ours))
        if b:
            console.print("baseline, every run (s): " + ", ".join(f"{r['total_s']:.2f}" for r in base))
            console.print(
                f"[bold]speed ratio ours/baseline: {b['total_s'] / best['total_s']:.2f}x; "
                f"memory ratio baseline/ours: {b['peak_rss_mb'] / best['peak_rss_mb']:.1f}x"
            )
        print(
            json.dumps(
                {"records": n, "ours": ours, "baseline": base, "parse_only_s": parse_s, "inspect_only_s": inspect_s}
            ),
            file=sys.stderr,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
