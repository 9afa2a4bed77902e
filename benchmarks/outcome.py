"""Outcome quality: what each part of the training recipe adds to the customized candidate's accuracy.

    python benchmarks/outcome.py [--model smollm2-135m-instruct] [--train 120] [--eval 60] [--seed 7]
                                 [--variants blueprint,default,balance,constrained,best-epoch]

Synthetic customer-service traffic with a fixed seed (duplicates, text answers, earlier turns, typos: the
same generator as ``make demo``) goes through the real dataset build (validation, dedup, stratified split),
then the candidate is trained and evaluated once per variant, each adding one part to the one before:

* ``blueprint``: NVIDIA's blueprint hyperparameters (the ``blueprint`` recipe: lr 1e-4, rank 32, alpha 16,
  batch 16, 2 epochs, every layer), nothing else;
* ``default``: the recipe chosen for the model's size (``training.recipe: auto``; for SmolLM2 ``tiny``: lr
  1e-3, rank 16, batch 8, epochs from the data size, decision-token weighting, the top half of the layers),
  without class balance and best-epoch selection, names unconstrained;
* ``balance``: + class balance (rare classes oversampled, from the split's class counts);
* ``constrained``: + tool names constrained to the request's tools while decoding (no retraining: the
  ``balance`` adapter evaluated again);
* ``best-epoch``: + best-epoch selection and early stopping on the validation set's function-name accuracy:
  the default recipe exactly as ``flywheel run`` uses it.

Every variant is evaluated on the same held-out eval set by the same scorer as a job's evals
(:func:`dataflywheel.evaluation.runner.run_eval`): function-name accuracy with its bootstrap 95% interval,
overall and per class, and the base model's accuracy for reference. Takes ~40 minutes on 2 cores with the
defaults (four LoRA runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from dataflywheel.datasets.build import build_datasets  # noqa: E402
from dataflywheel.datasets.sources import JsonlSource  # noqa: E402
from dataflywheel.evaluation.runner import EvalConfig, EvalType, load_dataset, run_eval  # noqa: E402
from dataflywheel.models.engine import LocalEngine  # noqa: E402
from dataflywheel.models.types import ChatRequest, ChatResult  # noqa: E402
from dataflywheel.settings import Settings, load_settings  # noqa: E402
from dataflywheel.synth.generator import SynthConfig, write_jsonl  # noqa: E402
from dataflywheel.training import TrainProgress, customize  # noqa: E402

METRIC = "function_name_accuracy"


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict[str, Any]
    constrained: bool
    reuse: str | None = None
    """Evaluate this earlier variant's adapter again instead of training."""


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("blueprint", {"recipe": "blueprint"}, constrained=False),
        Variant("default", {"class_balance": False, "select_best_epoch": False}, constrained=False),
        Variant("balance", {"select_best_epoch": False}, constrained=False),
        Variant("constrained", {}, constrained=True, reuse="balance"),
        Variant("best-epoch", {}, constrained=True),
    )
}


def build(settings: Settings, args: argparse.Namespace, work: Path) -> Path:
    traffic = work / "traffic.jsonl"
    records = round((args.train / 0.9 + args.eval) * 1.15)  # dedup and text answers take a few
    config = SynthConfig(
        records=records,
        seed=args.seed,
        duplicate_rate=0.03,
        text_answer_rate=0.05,
        multi_turn_rate=0.1,
        string_arguments_rate=0.2,
    )
    write_jsonl(config, traffic)
    split = settings.data_split.model_copy(
        update={"eval_size": args.eval, "limit": args.eval + round(args.train / 0.9), "min_total_records": 20}
    )
    result = build_datasets(
        JsonlSource(traffic), settings, workload_id=config.workload_id, client_id=config.client_id, data_split=split
    )
    return result.path


def evaluate(engine: LocalEngine, rows: list[dict[str, Any]], adapter: str | None, constrained: bool, out: Path) -> Any:
    requests = []
    for row in rows:
        request = row["request"]
        requests.append(
            ChatRequest(
                messages=request["messages"],
                tools=request.get("tools") or None,
                tool_choice=request.get("tool_choice"),
                adapter=adapter,
            )
        )
    config = EvalConfig(EvalType.CUSTOMIZED if adapter else EvalType.BASE, adapter or "base", max_tokens=64)
    for request in requests:
        request.sampling.max_tokens = config.max_tokens
        if hasattr(request, "constrain_tool_names"):
            request.constrain_tool_names = constrained
    results = engine.chat(requests)
    answers = {_key(r.messages): res for r, res in zip(requests, results, strict=True)}

    async def chat(request: ChatRequest) -> ChatResult:
        return answers[_key(request.messages)]

    return asyncio.run(run_eval(rows, chat, out, config))


def _progress(p: TrainProgress) -> None:
    if p.phase != "training" or (p.steps_completed % 10 and p.steps_completed != p.total_steps):
        return
    if p.steps_completed:
        print(
            f"  step {p.steps_completed}/{p.total_steps} epoch {p.epochs_completed + 1} loss {p.loss or 0:.3f} "
            f"{p.elapsed_s / p.steps_completed:.1f} s/step",
            flush=True,
        )


def _key(messages: list[dict[str, Any]]) -> str:
    return json.dumps(messages, sort_keys=True)


def per_class(summary: Any) -> dict[str, tuple[float, int]]:
    """Function-name accuracy and sample count per reference class, from the eval's own breakdown."""
    table = {}
    for label, entry in summary.per_class.items():
        agg = entry.metrics[METRIC]
        table[label] = (agg.mean if agg.mean is not None else float("nan"), agg.n)
    return dict(sorted(table.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--train", type=int, default=120, help="About how many records to train on.")
    parser.add_argument("--eval", type=int, default=60, help="Held-out records each variant is scored on.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    chosen = [VARIANTS[name] for name in args.variants.split(",") if name]

    with tempfile.TemporaryDirectory(prefix="outcome-") as tmp:
        work = Path(tmp)
        settings = load_settings(home=work / "home")
        started = time.monotonic()
        dataset = build(settings, args, work)
        manifest = json.loads((dataset / "manifest.json").read_text())
        rows = load_dataset(dataset / "eval.jsonl")
        print(f"dataset {dataset.name}: {manifest.get('counts')}", flush=True)
        engine = LocalEngine.from_name(args.model, settings)
        results: dict[str, Any] = {}
        base = evaluate(engine, rows, None, False, work / "eval-base")
        results["base"] = {"summary": base.metrics[METRIC], "per_class": per_class(base)}
        print(f"base: {base.metrics[METRIC]}", flush=True)
        adapters: dict[str, Path] = {}
        for variant in chosen:
            t0 = time.monotonic()
            metrics: dict[str, Any] = {}
            if variant.reuse:
                adapter = adapters[variant.reuse]
            else:
                trained = customize(settings, args.model, dataset, overrides=variant.overrides, progress=_progress)
                adapter = trained.adapter.path
                metrics = trained.metrics
            adapters[variant.name] = adapter
            engine.load_adapter(variant.name, adapter)
            out = work / f"eval-{variant.name}"
            summary = evaluate(engine, rows, variant.name, variant.constrained, out)
            engine.unload_adapter(variant.name)
            results[variant.name] = {
                "summary": summary.metrics[METRIC],
                "per_class": per_class(summary),
                "confusion": summary.confusion.to_dict(),
                "config": metrics.get("config"),
                "epochs": metrics.get("epochs"),
                "best_epoch": metrics.get("best_epoch"),
                "seconds": round(time.monotonic() - t0, 1),
            }
            print(f"{variant.name}: {summary.metrics[METRIC]} ({time.monotonic() - t0:.0f} s)", flush=True)
        print_table(results)
        print(f"total {time.monotonic() - started:.0f} s")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))


def print_table(results: dict[str, Any]) -> None:
    classes = sorted({c for r in results.values() for c in r["per_class"]})
    head = f"{'variant':<12} {'accuracy [95% CI]':<22} " + " ".join(f"{c[:14]:>14}" for c in classes)
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        s = r["summary"]
        overall = f"{s['mean']:.3f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
        cells = []
        for c in classes:
            acc, n = r["per_class"].get(c, (float("nan"), 0))
            cells.append(f"{acc:.2f} (n={n})".rjust(14))
        print(f"{name:<12} {overall:<22} " + " ".join(cells))


if __name__ == "__main__":
    main()
