"""One LoRA run of a recipe on the datasets a ``flywheel demo`` (or any job) built, then its eval score.

    python benchmarks/recipe_run.py --dataset .flywheel/datasets/primary_assistant/northwind-1/<build> \\
        [--recipe tiny] [--set epochs=3 --set learning_rate=0.0015 ...]

Trains on the build's ``train.jsonl`` (validation and best-epoch selection on ``val.jsonl``) with the recipe
the job would pick, plus ``--set`` overrides, then scores the adapter's function-name accuracy on the build's
``eval.jsonl`` (tool names constrained, as in evals). Prints the seconds per step (median, and the list), the
validation score per epoch, and the eval score per class: the figures behind the ``tiny`` recipe's notes in
``training/recipes.py``. Wall clock: run it on otherwise idle cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _eval_rows(path: Path) -> list[dict[str, Any]]:
    """Logged records as training-style rows: the request's messages, then the logged answer."""
    rows = []
    for record in _rows(path):
        answer = record["response"]["choices"][0]["message"]
        rows.append({"messages": [*record["request"]["messages"], answer], "tools": record["request"].get("tools")})
    return rows


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="A dataset build folder (train/val/eval.jsonl).")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--recipe", default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="A TrainConfig override.")
    args = parser.parse_args(argv)

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dataflywheel.models.registry import local_model_dir, resolve_model
    from dataflywheel.settings import Settings
    from dataflywheel.training.config import TrainConfig
    from dataflywheel.training.recipes import count_parameters, pick_recipe, recipe_values
    from dataflywheel.training.trainer import LoRATrainer, TrainProgress
    from dataflywheel.training.validation import score_rows

    settings = Settings()
    model_dir = local_model_dir(resolve_model(args.model, settings), settings)
    train, val = _rows(args.dataset / "train.jsonl"), _rows(args.dataset / "val.jsonl")
    recipe = pick_recipe(args.recipe, count_parameters(model_dir))
    values = recipe_values(recipe, len(train))
    values.update({k: _value(v) for k, v in (item.split("=", 1) for item in args.set)})
    config = TrainConfig(**values)
    print(f"recipe {recipe.name}: {json.dumps(values, default=str)}", flush=True)

    marks: list[float] = []

    def progress(p: TrainProgress) -> None:
        if p.phase == "training":
            marks.append(time.perf_counter())

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recipe-run-") as tmp:
        result = LoRATrainer(model_dir, config, Path(tmp), progress=progress).train(train, val)
        seconds = time.perf_counter() - started
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
        model = PeftModel.from_pretrained(base, str(result.adapter_dir)).eval()
        score = score_rows(
            model, tokenizer, _eval_rows(args.dataset / "eval.jsonl"), device="cpu", dtype="bfloat16", max_tokens=24
        )
    steps = sorted(b - a for a, b in itertools.pairwise(marks))
    epochs = result.metrics["epochs"]
    print(f"training {seconds:.0f} s, {len(steps)} steps, median {steps[len(steps) // 2]:.2f} s a step")
    print(
        "validation function-name accuracy by epoch: "
        + ", ".join(f"{e['epoch']}: {e.get('val_function_name_accuracy', float('nan')):.3f}" for e in epochs)
        + f" (best {result.metrics['best_epoch']})"
    )
    per_class = ", ".join(f"{c} {v:.2f}" for c, v in score.per_class.items())
    print(f"eval function-name accuracy {score.accuracy:.3f} on {score.n} records ({per_class})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
