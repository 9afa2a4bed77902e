"""Generation throughput of the local engine: batched vs one at a time, with and without prefix reuse.

    python benchmarks/generation.py [--model smollm2-135m-instruct] [--requests 32] [--max-tokens 48]

Builds ``--requests`` realistic routing prompts from synthetic customer-service records (system prompt + 4
tool schemas + the customer's message; with SmolLM2's tokenizer and the codec's rendering ~1000-1100 tokens,
~990 of them the same in every prompt), rendered with the tool-call codec (or, when the codec is not
available, with the tools appended to the system prompt and the tokenizer's chat template). Then generates
greedily, ``--max-tokens`` per request:

* batched: all requests in one ``generate_text`` call (sub-batches of ``--batch-size``),
* sequential: one request per call, on the first ``--sequential-requests`` prompts (a rate measured on a
  subset; running all of them one by one would take minutes),

each with prefix reuse on and off. The prefix cache is cleared before each mode; the prefix-reuse modes then
see one other record first (as a server does: the system prompt + tools recur on every request), so both
batched and sequential are measured in that steady state. ``--expanded`` adds a batched run with the prefix
copied into every row instead of cascade attention. Reports completion tokens/s (and prompt+completion
tokens/s) per mode, the batched/sequential ratio (target >= 4x) and the prefix-reuse speedups, and checks
that all modes generated the same text for the prompts they share. A full run takes ~3-4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class Run:
    mode: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    texts: list[str]

    @property
    def completion_rate(self) -> float:
        return self.completion_tokens / self.seconds

    @property
    def total_rate(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / self.seconds


def _common_prefix_len(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    return next((k for k in range(n) if a[k] != b[k]), n)


def build_prompts(engine: Any, n: int) -> tuple[list[str], str]:
    """``n`` rendered routing prompts and how they were rendered."""
    from dataflywheel.synth.generator import SynthConfig, generate

    records = list(generate(SynthConfig(records=n, seed=1)))
    try:
        codec = engine.codec
    except ImportError:
        codec = None
    if codec is not None:
        prompts = []
        for record in records:
            request = record["request"]
            prompts.append(codec.render_prompt(request["messages"], tools=request.get("tools")).text)
        return prompts, "tool-call codec"
    prompts = []
    for record in records:
        request = record["request"]
        messages = [dict(m) for m in request["messages"]]
        tools = json.dumps(request.get("tools") or [], indent=1)
        if messages and messages[0]["role"] == "system":
            messages[0]["content"] = f"{messages[0]['content']}\n\n# Tools\n{tools}"
        else:
            messages.insert(0, {"role": "system", "content": f"# Tools\n{tools}"})
        text = engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompts.append(str(text))
    return prompts, "chat template (codec unavailable)"


def timed(engine: Any, mode: str, prompts: list[str], sampling: Any, batched: bool, reuse: bool, primer: str) -> Run:
    engine.prefix_reuse = reuse
    engine.clear_prefix_cache()
    if reuse:  # steady state: the system prompt + tools, seen on every request, is already cached
        engine.generate_text([primer], type(sampling)(max_tokens=1))
    start = time.perf_counter()
    if batched:
        out = engine.generate_text(prompts, sampling)
    else:
        out = [engine.generate_text([p], sampling)[0] for p in prompts]
    seconds = time.perf_counter() - start
    return Run(
        mode=mode,
        requests=len(prompts),
        prompt_tokens=sum(o.prompt_tokens for o in out),
        completion_tokens=sum(o.completion_tokens for o in out),
        seconds=seconds,
        texts=[o.text for o in out],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="candidate name, alias or folder")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16, help="engine max_batch_size")
    parser.add_argument(
        "--sequential-requests", type=int, default=6, help="how many of the prompts to also run one at a time"
    )
    parser.add_argument(
        "--expanded",
        action="store_true",
        help="also run batched with the prefix copied into every row instead of cascade attention (~45 s more)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--home", default=None, help="flywheel home (model cache); default from settings")
    args = parser.parse_args(argv)

    from dataflywheel.models.engine import LocalEngine
    from dataflywheel.models.types import SamplingParams
    from dataflywheel.settings import load_settings

    settings = load_settings(home=args.home) if args.home else load_settings()
    started = time.perf_counter()
    engine = LocalEngine.from_name(
        args.model, settings, device=args.device, dtype=args.dtype, max_batch_size=args.batch_size, threads=args.threads
    )
    print(
        f"model {args.model} on {engine.device} {str(engine.dtype).removeprefix('torch.')}, "
        f"{engine.threads} threads, batches of up to {engine.max_batch_size}, cascade attention "
        f"{'on' if engine.cascade_attention else 'unavailable'}, loaded in {time.perf_counter() - started:.1f} s"
    )
    prompts, how = build_prompts(engine, args.requests + 1)
    primer = prompts.pop()  # another record: warms the prefix cache before the prefix-reuse modes
    lengths = [len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    ids = [engine.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    shared = min(_common_prefix_len(ids[0], other) for other in ids)
    print(
        f"{len(prompts)} prompts rendered with the {how}: {min(lengths)}-{max(lengths)} tokens "
        f"(mean {sum(lengths) / len(lengths):.0f}), {shared} shared by all; greedy, max_tokens {args.max_tokens}"
    )
    print("prefix-reuse modes start with the prefix cache warmed by one other record (steady state)")
    sampling = SamplingParams(max_tokens=args.max_tokens, temperature=0.0)
    engine.generate_text([primer[:200]], SamplingParams(max_tokens=2))  # warm-up

    seq_prompts = prompts[: max(1, min(args.sequential_requests, len(prompts)))]
    runs = [
        timed(engine, "batched, prefix reuse", prompts, sampling, batched=True, reuse=True, primer=primer),
        timed(engine, "batched, no prefix reuse", prompts, sampling, batched=True, reuse=False, primer=primer),
        timed(engine, "sequential, prefix reuse", seq_prompts, sampling, batched=False, reuse=True, primer=primer),
        timed(engine, "sequential, no prefix reuse", seq_prompts, sampling, batched=False, reuse=False, primer=primer),
    ]
    if args.expanded and engine.cascade_attention:
        engine.cascade_attention = False
        runs.append(
            timed(engine, "batched, reuse, expanded", prompts, sampling, batched=True, reuse=True, primer=primer)
        )
        engine.cascade_attention = True

    print()
    header = (
        f"{'mode':<30} {'reqs':>5} {'prompt tok':>10} {'compl tok':>9} {'seconds':>8} "
        f"{'compl tok/s':>11} {'all tok/s':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r.mode:<30} {r.requests:>5} {r.prompt_tokens:>10} {r.completion_tokens:>9} {r.seconds:>8.1f} "
            f"{r.completion_rate:>11.1f} {r.total_rate:>10.1f}"
        )
    by = {r.mode: r for r in runs}
    batched, batched_off = by["batched, prefix reuse"], by["batched, no prefix reuse"]
    seq, seq_off = by["sequential, prefix reuse"], by["sequential, no prefix reuse"]
    ratio = batched.completion_rate / seq.completion_rate
    print()
    print(
        f"batched vs sequential (prefix reuse on):  {ratio:.1f}x completion tokens/s "
        f"({'meets' if ratio >= 4 else 'below'} the 4x target)"
    )
    print(f"batched vs sequential (prefix reuse off): {batched_off.completion_rate / seq_off.completion_rate:.1f}x")
    print(f"prefix reuse speedup, batched:    {batched_off.seconds / batched.seconds:.2f}x")
    print(f"prefix reuse speedup, sequential: {seq_off.seconds / seq.seconds:.2f}x")
    if "batched, reuse, expanded" in by:
        expanded = by["batched, reuse, expanded"]
        print(f"cascade attention vs prefix copied into every row, batched: {expanded.seconds / batched.seconds:.2f}x")

    n = len(seq_prompts)
    reference = batched_off.texts
    same = [sum(a == b for a, b in zip(reference[:n], r.texts[:n], strict=True)) for r in runs]
    print(f"greedy outputs equal to 'batched, no prefix reuse' on the first {n} prompts, per mode: {same} of {n}")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
