"""The frozen lower layers (``training/frozen.py``) against the step that runs every layer, in one process.

    python benchmarks/frozen_layers.py [--rows 48] [--epochs 3] [--refresh 4]

Trains SmolLM2-135M with the ``tiny`` recipe (LoRA on the top half of the layers, the shared prefix forward
only, batch 8) on ``--rows`` synthetic routing rows for ``--epochs`` epochs (no validation rows), three
ways one after the other in this process, with the same seed and batches:

* **baseline**: ``frozen_cache`` off: every step runs all 30 layers (the prefix once, forward only);
* **frozen**: the lower 15 layers' work on the prefix once per run and on each row once (epoch 1);
  the same loss and gradients as the baseline, up to float rounding;
* **frozen + refresh N**: also reuses the adapted layers' keys/values of the prefix for N steps.

Prints seconds per step of each epoch, the ratio to the baseline, and the last epoch's train loss (the
frozen run's should equal the baseline's to ~3 decimals; the refresh run's may differ a little). Timings are
wall clock: run it on otherwise idle cores.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    name: str
    epoch_step_s: list[float]
    """Mean seconds per optimizer step in each epoch."""
    train_s: float
    last_loss: float


def train(model_dir: str, rows: list[dict[str, object]], overrides: dict[str, object], name: str) -> Result:
    from dataflywheel.training.config import TrainConfig
    from dataflywheel.training.recipes import RECIPES, recipe_values
    from dataflywheel.training.trainer import LoRATrainer, TrainProgress

    values = recipe_values(RECIPES["tiny"], len(rows))
    values.update(overrides)
    cfg = TrainConfig(**values)
    ends: list[float] = []
    per_epoch = -(-len(rows) // cfg.batch_size)

    def progress(p: TrainProgress) -> None:
        if p.phase == "training" and p.loss is not None and p.steps_completed > len(ends):
            ends.append(time.perf_counter())
        elif p.phase == "training" and p.steps_completed == 0:
            ends.clear()
            starts.append(time.perf_counter())

    starts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-frozen-") as tmp:
        result = LoRATrainer(model_dir, cfg, Path(tmp), progress=progress).train(rows)
    marks = [starts[0], *ends]
    steps = [b - a for a, b in itertools.pairwise(marks)]
    epochs = [steps[i : i + per_epoch] for i in range(0, len(steps), per_epoch)]
    return Result(
        name,
        [sum(e) / len(e) for e in epochs if e],
        float(result.metrics["train_seconds"]),
        float(result.metrics["final_train_loss"]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--refresh", type=int, default=4, help="prefix_refresh_steps of the third run")
    parser.add_argument("--home", default=str(REPO / ".flywheel"), help="flywheel home (model cache)")
    args = parser.parse_args(argv)

    import transformers

    from dataflywheel.curation.training_format import to_training_row
    from dataflywheel.models.registry import local_model_dir, resolve_model
    from dataflywheel.settings import load_settings
    from dataflywheel.synth.generator import SynthConfig, generate

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    settings = load_settings(home=args.home)
    model_dir = local_model_dir(resolve_model(args.model, settings), settings)
    rows: list[dict[str, object]] = [to_training_row(r) for r in generate(SynthConfig(records=args.rows, seed=1))]
    common: dict[str, object] = {"epochs": args.epochs, "select_best_epoch": False, "class_balance": False}
    runs = [
        ("baseline (every layer)", {"frozen_cache": False}),
        ("frozen lower layers", {"frozen_cache": True}),
        (f"frozen + prefix refresh {args.refresh}", {"frozen_cache": True, "prefix_refresh_steps": args.refresh}),
    ]
    results = []
    for name, overrides in runs:
        print(f"training: {name} ...", file=sys.stderr, flush=True)
        results.append(train(model_dir, rows, {**common, **overrides}, name))
    base = results[0]
    print(f"{args.model}, tiny recipe, {args.rows} rows x {args.epochs} epochs (batch 8), wall clock")
    epochs = " | ".join(f"epoch {i + 1} s/step" for i in range(args.epochs))
    print(f"| run | {epochs} | train s | speed-up | last train loss |")
    print("|---|" + "---|" * (args.epochs + 3))
    for r in results:
        cells = " | ".join(f"{s:.2f}" for s in r.epoch_step_s)
        print(f"| {r.name} | {cells} | {r.train_s:.0f} | {base.train_s / r.train_s:.2f}x | {r.last_loss:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
