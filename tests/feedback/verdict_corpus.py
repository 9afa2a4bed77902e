"""The normalizer's verdicts on a fixed corpus of messy outputs, for a regression test against a golden file.

The corpus: every case of the normalizer's and the parser's hand-written corpora, cut-off prefixes of each of
their texts, the benchmark's synthetic student outputs, and a deterministic "soup" of tool-call-like
fragments. For each item the golden file keeps the verdict's status, reason and repair codes (readable) and
a digest of the whole verdict (message, every repair, warning and detail text) and of what
:func:`~dataflywheel.models.toolparse.parse_tool_calls` returns for a text item.

    PYTHONPATH=src python -m tests.feedback.verdict_corpus            # rewrite the golden file
    PYTHONPATH=src python -m tests.feedback.verdict_corpus --full F   # also dump every verdict in full to F

The golden file was written before the tool-call reader was split into recognizers with findings; a change
to it must be justified item by item. Changed since: the parser digests of 10 items (the schema unwrapping
the parser now shares with the normalizer takes ``{"value": v}`` entries as ``v`` and no longer takes type
placeholders or cut-off schema entries as values); no normalizer verdict.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataflywheel.feedback import Normalized, normalize_output
from dataflywheel.feedback.normalize import entry_code
from dataflywheel.models.toolparse import parse_tool_calls
from dataflywheel.models.types import ToolChoice

GOLDEN = Path(__file__).with_name("normalize_golden.jsonl")
_ROOT = Path(__file__).resolve().parents[2]
_BENCH_RECORDS = 800
_SOUPS = 1500
_PREFIXES = 6
_MUTANTS = 4
_STRAY = "abc{}[]\"' :,<>/="


@dataclass(frozen=True)
class Item:
    id: str
    raw: Any
    tools: list[dict[str, Any]] | None
    tool_choice: ToolChoice = None
    parallel: bool = True


def benchmark_outputs() -> list[Any]:
    """The normalizer benchmark's synthetic student outputs (``benchmarks/normalizer.py``'s ``Output``)."""
    spec = importlib.util.spec_from_file_location("_normalizer_bench", _ROOT / "benchmarks" / "normalizer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    outputs: list[Any] = module.build_outputs(_BENCH_RECORDS, 7)
    return outputs


def _benchmark_outputs() -> list[Item]:
    return [Item(f"bench/{i}/{o.form}", o.raw, o.tools) for i, o in enumerate(benchmark_outputs())]


def corpus() -> list[Item]:
    """Every item, in a fixed order."""
    from tests.feedback import test_normalize as norm
    from tests.models import test_toolparse as parse

    items = [Item(f"case/{c.id}", c.raw, c.tools, c.tool_choice) for c in norm.CASES]
    items += [Item(f"case/{c.id}/serial", c.raw, c.tools, c.tool_choice, False) for c in norm.CASES]
    items += [Item(f"parse/{c.id}", c.text, parse.TOOLS) for c in parse.CASES]
    texts = [(f"case/{c.id}", c.raw, c.tools) for c in norm.CASES if isinstance(c.raw, str)]
    texts += [(f"parse/{c.id}", c.text, parse.TOOLS) for c in parse.CASES]
    for name, text, tools in texts:
        for k in range(1, _PREFIXES + 1):
            cut = len(text) * k // (_PREFIXES + 1)
            items.append(Item(f"{name}/prefix{k}", text[:cut], tools))
    items += _benchmark_outputs()
    rng = random.Random(20261114)
    fragments = sorted(set(norm._FRAGMENTS) | set(parse._FRAGMENTS))
    tool_sets: list[list[dict[str, Any]] | None] = [norm.ALL_TOOLS, parse.TOOLS, None]
    choices: list[ToolChoice] = [None, "required", "none", {"type": "function", "function": {"name": norm.TALK}}]
    for i in range(_SOUPS):
        count = rng.randrange(1, 41)
        pieces = [rng.choice(fragments) if rng.random() < 0.85 else rng.choice(_STRAY) for _ in range(count)]
        items.append(Item(f"soup/{i}", "".join(pieces), rng.choice(tool_sets), rng.choice(choices)))
    for name, text, tools in texts:  # mutants: a character dropped, quotes swapped, a fragment inserted
        for k in range(_MUTANTS):
            at = rng.randrange(len(text) + 1)
            kind = rng.randrange(3)
            if kind == 0:
                mutant = text[:at] + text[at + 1 :]
            elif kind == 1:
                mutant = text[:at] + text[at:].replace('"', "'", rng.randrange(1, 4))
            else:
                mutant = text[:at] + rng.choice(fragments) + text[at:]
            items.append(Item(f"{name}/mutant{k}", mutant, tools))
    return items


def verdict(item: Item) -> Normalized:
    return normalize_output(item.raw, item.tools, tool_choice=item.tool_choice, parallel_tool_calls=item.parallel)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=False, default=repr)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def full(item: Item) -> dict[str, Any]:
    """Everything the normalizer (and, for text, the parser) says about ``item``."""
    result = verdict(item)
    out: dict[str, Any] = {
        "id": item.id,
        "status": result.status.value,
        "reason": result.reason.value if result.reason else None,
        "detail": result.detail,
        "repairs": result.repairs,
        "warnings": result.warnings,
        "message": result.message,
    }
    if isinstance(item.raw, str):
        parsed = parse_tool_calls(item.raw, item.tools)
        out["parsed"] = {
            "content": parsed.content,
            "calls": [
                {"name": c.name, "arguments": c.arguments, "raw": c.raw, "format": c.format} for c in parsed.calls
            ],
            "problems": parsed.problems,
        }
    return out


def golden_line(item: Item) -> dict[str, Any]:
    """The golden file's line for ``item``: readable status, reason and codes, digests of the rest."""
    record = full(item)
    line = {
        "id": item.id,
        "status": record["status"],
        "reason": record["reason"],
        "codes": list(dict.fromkeys(entry_code(r) for r in record["repairs"])),
        "digest": _digest({k: v for k, v in record.items() if k not in ("id", "parsed")}),
    }
    if "parsed" in record:
        line["parsed"] = _digest(record["parsed"])
    return line


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", type=Path, help="also write every item's full verdict (JSON lines) here")
    ap.add_argument("--out", type=Path, default=GOLDEN)
    args = ap.parse_args()
    items = corpus()
    with args.out.open("w") as fh:
        for item in items:
            fh.write(json.dumps(golden_line(item), ensure_ascii=False, separators=(",", ":")) + "\n")
    if args.full:
        with args.full.open("w") as fh:
            for item in items:
                fh.write(json.dumps(full(item), ensure_ascii=True, default=repr) + "\n")
    print(f"{len(items)} items written to {args.out}")


if __name__ == "__main__":
    main()
