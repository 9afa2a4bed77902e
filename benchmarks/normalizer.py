"""Output-normalizer throughput and coverage: ``normalize_output`` vs a naive canonical-only reader.

    python benchmarks/normalizer.py [--records 20000] [--runs 3] [--seed 7]

Takes the teacher answers of N synthetic customer-service records (the four routing tools, 5% plain-text
answers) and writes each one the way a small student model might, drawn from a fixed mix of the forms the
blueprint's 1B model produced: canonical ``<tool_call>`` blocks, XML-like tool tags, ``<function>`` tags,
call syntax, ``<|python_tag|>`` JSON, fenced JSON, pasted tool definitions, broken JSON, OpenAI messages with
bad ``arguments``, cut-off outputs and unknown tools (the mix is illustrative, not measured).

Each output has a known right verdict: its calls, a text answer, or a rejection (cut off, unknown tool, tool
definitions pasted without values). Both readers run over the same outputs in the same process (best of
``--runs``); the table gives records/s and the share each reader gets right, per form and overall:

* ours: :func:`dataflywheel.feedback.normalize_output` with the request's tools;
* naive: ``json.loads`` of the text between ``<tool_call>`` tags (a message's ``content`` for a message); no
  tag means a text answer, a block that does not load means a rejection. Names are not checked.

Takes ~10-20 s for 20,000 records on one core.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Calls = list[tuple[str, dict[str, Any]]]


@dataclass
class Output:
    form: str
    raw: Any
    tools: list[dict[str, Any]]
    expected: Calls | None
    """The right verdict: the calls ([] for a text answer), or None when the output must be rejected."""


# ---- rendering a teacher call the ways a small model writes it -----------------------------------------------


def _canonical(name: str, args: dict[str, Any], rng: random.Random) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': args})}\n</tool_call>"


def _chatter(name: str, args: dict[str, Any], rng: random.Random) -> str:
    return rng.choice(["Sure! ", "Let me check that for you.\n", "Of course. "]) + _canonical(name, args, rng)


def _xml(name: str, args: dict[str, Any], rng: random.Random) -> str:
    attrs = " ".join(f'{k}="{html.escape(str(v))}"' for k, v in args.items())
    return f"<{name} {attrs}/>" if rng.random() < 0.7 else f"<{name} {attrs}>"


def _xml_children(name: str, args: dict[str, Any], rng: random.Random) -> str:
    body = "".join(f"<{k}>{html.escape(str(v), quote=False)}</{k}>" for k, v in args.items())
    return f"<{name}>{body}</{name}>"


def _function_tag(name: str, args: dict[str, Any], rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"<function>{name}{json.dumps(args)}" + ("</function>" if rng.random() < 0.5 else "")
    return f"<function={name}>{json.dumps(args)}</function>"


def _call_syntax(name: str, args: dict[str, Any], rng: random.Random) -> str:
    return f"functions.{name}({json.dumps(args)})"


def _python_tag(name: str, args: dict[str, Any], rng: random.Random) -> str:
    return "<|python_tag|>" + json.dumps({"name": name, "parameters": args})


def _fenced(name: str, args: dict[str, Any], rng: random.Random) -> str:
    return "```json\n" + json.dumps({"name": name, "arguments": args}, indent=2) + "\n```"


def _tool(tools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    tool: dict[str, Any] = json.loads(json.dumps(next(t for t in tools if t["function"]["name"] == name)))
    return tool


def _schema_echo(name: str, args: dict[str, Any], rng: random.Random, tools: list[dict[str, Any]]) -> str:
    tool = _tool(tools, name)
    if rng.random() < 0.5:
        tool["arguments"] = args
    else:
        tool["function"]["parameters"]["properties"] = args
    return json.dumps(tool)


def _broken_json(name: str, args: dict[str, Any], rng: random.Random) -> str:
    pairs = ", ".join(f"'{k}': {json.dumps(v)}" for k, v in args.items())
    kind = rng.randrange(3)
    if kind == 0:
        return f"<tool_call>{{'name': '{name}', 'arguments': {{{pairs}}}}}</tool_call>"
    if kind == 1:
        return f'<tool_call>{{"name": "{name}", "arguments": {json.dumps(args)[:-1]},}},}}</tool_call>'
    return f'<tool_call>{{name: "{name}", arguments: {json.dumps(args)}}}</tool_call>'


def _message(name: str, args: dict[str, Any], rng: random.Random, arguments: Any) -> dict[str, Any]:
    call = {
        "id": f"call_{rng.randrange(10**8)}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _message_object(name: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return _message(name, args, rng, args)


def _message_string(name: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return _message(name, args, rng, json.dumps(args))


def _message_double(name: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return _message(name, args, rng, json.dumps(json.dumps(args)))


def _message_trailing(name: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return _message(name, args, rng, json.dumps(args) + " I hope this helps!")


def _truncated(name: str, args: dict[str, Any], rng: random.Random) -> str:
    text = _canonical(name, args, rng)
    cut = text.index('"arguments"') + 14
    return text[: cut + rng.randrange(4, 20)]


# (form, weight, renderer, whether the right verdict is the call itself)
_CALL_FORMS: list[tuple[str, float, Callable[..., Any], bool]] = [
    ("canonical <tool_call>", 30, _canonical, True),
    ("canonical + chatter", 4, _chatter, True),
    ("xml tag with attributes", 11, _xml, True),
    ("xml tag with children", 3, _xml_children, True),
    ("<function> tag", 8, _function_tag, True),
    ("functions.Name({...})", 3, _call_syntax, True),
    ("<|python_tag|> JSON", 8, _python_tag, True),
    ("fenced JSON", 4, _fenced, True),
    ("pasted tool definition", 3, _schema_echo, True),
    ("broken JSON", 6, _broken_json, True),
    ("message, object arguments", 5, _message_object, True),
    ("message, string arguments", 4, _message_string, True),
    ("message, double-encoded", 2, _message_double, True),
    ("message, trailing text", 2, _message_trailing, True),
    ("cut off", 2, _truncated, False),
]
_UNKNOWN_WEIGHT = 1.0
_PASTED_TOOLS_WEIGHT = 1.5


def build_outputs(records: int, seed: int) -> list[Output]:
    from dataflywheel.synth.generator import SynthConfig, generate

    rng = random.Random(seed)
    weights = [w for _, w, _, _ in _CALL_FORMS] + [_UNKNOWN_WEIGHT, _PASTED_TOOLS_WEIGHT]
    out: list[Output] = []
    for record in generate(SynthConfig(records=records, seed=seed, text_answer_rate=0.05)):
        tools = record["request"]["tools"]
        message = record["response"]["choices"][0]["message"]
        if not message.get("tool_calls"):
            out.append(Output("plain text answer", message["content"], tools, []))
            continue
        fn = message["tool_calls"][0]["function"]
        name, args = fn["name"], fn["arguments"]
        pick = rng.choices(range(len(weights)), weights)[0]
        if pick == len(_CALL_FORMS):
            out.append(Output("unknown tool", _canonical("Go" + name, args, rng), tools, None))
        elif pick == len(_CALL_FORMS) + 1:
            out.append(Output("pasted tools, no values", json.dumps(tools), tools, None))
        else:
            form, _, render, keep = _CALL_FORMS[pick]
            raw = render(name, args, rng, tools) if render is _schema_echo else render(name, args, rng)
            out.append(Output(form, raw, tools, [(name, args)] if keep else None))
    return out


# ---- the two readers ---------------------------------------------------------------------------------------

_TAG_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


def naive(raw: Any) -> Calls | None:
    """Canonical blocks only: their calls; [] (a text answer) when there is no block; None when one does not
    load."""
    text = raw if isinstance(raw, str) else (raw.get("content") or "")
    calls: Calls = []
    for body in _TAG_RE.findall(text):
        try:
            obj = json.loads(body)
        except ValueError:
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("arguments"), dict):
            return None
        calls.append((str(obj.get("name")), obj["arguments"]))
    return calls


def ours(output: Output) -> Calls | None:
    from dataflywheel.feedback import normalize_output

    result = normalize_output(output.raw, output.tools)
    return result.calls if result.usable else None


def timed(fn: Callable[[], list[Calls | None]], runs: int) -> tuple[float, list[Calls | None]]:
    best, verdicts = float("inf"), []
    for _ in range(runs):
        start = time.perf_counter()
        verdicts = fn()
        best = min(best, time.perf_counter() - start)
    return best, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3, help="timed passes of each reader; the best is reported")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    from dataflywheel.feedback import NormalizeReport, normalize_output

    console = Console()
    t = time.perf_counter()
    outputs = build_outputs(args.records, args.seed)
    console.print(f"rendered {len(outputs):,} outputs in {time.perf_counter() - t:.1f} s")

    normalize_output(outputs[0].raw, outputs[0].tools)  # imports and regex compilation out of the timing
    ours_s, ours_v = timed(lambda: [ours(o) for o in outputs], args.runs)
    naive_s, naive_v = timed(lambda: [naive(o.raw) for o in outputs], args.runs)

    per_form: dict[str, Counter[str]] = defaultdict(Counter)
    for output, mine, theirs in zip(outputs, ours_v, naive_v, strict=True):
        counts = per_form[output.form]
        counts["n"] += 1
        counts["ours"] += mine == output.expected
        counts["naive"] += theirs == output.expected

    n = len(outputs)
    table = Table(title=f"Normalizing {n:,} student outputs (best of {args.runs})", title_justify="left")
    table.add_column("form")
    table.add_column("share", justify="right")
    table.add_column("ours right", justify="right")
    table.add_column("naive right", justify="right")
    for form, counts in sorted(per_form.items(), key=lambda kv: -kv[1]["n"]):
        c = counts["n"]
        table.add_row(form, f"{c / n:.1%}", f"{counts['ours'] / c:.1%}", f"{counts['naive'] / c:.1%}")
    right_ours = sum(c["ours"] for c in per_form.values()) / n
    right_naive = sum(c["naive"] for c in per_form.values()) / n
    table.add_row("[bold]all", "100%", f"[bold]{right_ours:.1%}", f"[bold]{right_naive:.1%}")
    table.add_row("[bold]records/s", "", f"[bold]{n / ours_s:,.0f}", f"[bold]{n / naive_s:,.0f}")
    console.print(table)

    report = NormalizeReport.of(normalize_output(o.raw, o.tools) for o in outputs)
    summary = report.to_dict()
    console.print("ours, statuses: " + ", ".join(f"{k} {v / n:.1%}" for k, v in summary["statuses"].items()))
    console.print("ours, reject reasons: " + ", ".join(f"{k} {v}" for k, v in summary["reasons"].items()))
    console.print("ours, top repairs: " + ", ".join(f"{k} {v}" for k, v in list(summary["repairs"].items())[:8]))
    console.print(
        f"[bold]throughput ratio ours/naive: {naive_s / ours_s:.3f}x "
        f"({ours_s / n * 1e6:.1f} vs {naive_s / n * 1e6:.2f} us/record); "
        f"right: {right_ours:.1%} vs {right_naive:.1%}"
    )


if __name__ == "__main__":
    main()
