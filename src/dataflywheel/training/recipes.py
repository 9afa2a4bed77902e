"""Training recipes: default hyperparameters chosen from the candidate's size and the dataset's size.

One learning rate does not fit every model: the blueprint's (lr 1e-4, rank 32, alpha 16, batch 16, 2 epochs)
suits 1-8B models on a GPU, and barely moves a 135M model (measured: SmolLM2-135M stayed at 0.00 function-name
accuracy on 100 held-out real records). Smaller models want a larger learning rate and, on the few hundred
records a workload usually has, more optimizer steps. A recipe is picked by the model's parameter count
(read from its config, no weights loaded); the number of epochs then follows from the dataset's size so that a
small dataset still gets enough steps (:func:`epochs_for`). Nothing here reads a tool's name or a record's text.

Precedence, lowest first: the recipe, then every hyperparameter set explicitly in the ``training`` / ``lora``
settings, then a job's ``training_config``. ``training.recipe`` (or ``recipe`` in a job's ``training_config``)
names a recipe instead of ``auto``; ``blueprint`` gives the blueprint's values.

| recipe | for | lr | rank / alpha | batch | epochs (min-max, from the data) | dropout | decision weight |
|---|---|---|---|---|---|---|---|
| ``tiny`` | < 0.5B parameters (SmolLM2-135M/360M) | 1e-3 | 16 / 32 | 8 | 2-6, >= 120 steps | 0 | 3 |
| ``small`` | 0.5B-3B (Qwen2.5-0.5B/1.5B, Llama-3.2-1B/3B) | 3e-4 | 16 / 32 | 8 | 2-5, >= 60 steps | 0.05 | 3 |
| ``large`` | >= 3B (Llama-3.1-8B, ...) | 1e-4 | 16 / 32 | 16 | 2-3, >= 40 steps | 0.05 | 2 |
| ``blueprint`` | by name only | 1e-4 | 32 / 16 | 16 | 2 | 0.1 | 1 |

``tiny`` adapts the top half of the decoder layers only (``layers_fraction`` 0.5: no backward pass below, a
step of 8 SmolLM2 rows takes ~8.5 s instead of ~15.5 s on 2 cores), groups rows of similar length and runs
the shared prompt prefix forward only (``prefix_gradients`` False: the rows' own tokens train the adapter).
Measured on the demo's data (2 cores): ~6.5 s per step (8.5 s before, with prefix gradients and a batched
vocabulary projection); validation tool-name accuracy 0.37, 0.56, 0.74, 0.74 after 30, 60, 90 and 120 steps,
where the eval score with prefix gradients was 0.567 after 60 steps (other rows: indicative only); the demo's
customized eval after 120 steps: 0.800 [0.67, 0.93]. So it makes 120 steps, in about the time 80 took.
Optionally the layers below the adapter run once per run, not once per step (``frozen_cache``, exact: see
:mod:`dataflywheel.training.frozen`): 1.19x over 2 epochs of 48 rows, 1.5x on every epoch after the first
(``benchmarks/frozen_layers.py``), but 1.03x on the demo's class-balanced rows (new rows keep being drawn):
not turned on by a recipe. Measured and not adopted: the top third of the layers with the adapted
layers' prefix keys/values refreshed every 4 steps (``prefix_refresh_steps``) made the demo's steps ~4.7 s
and its customized eval 0.77 [0.60, 0.90] (best epoch 3), below the top half's 0.800.
Every recipe except ``blueprint`` turns on class balance, decision-token weighting and best-epoch selection
(see :mod:`dataflywheel.training.balance`, :mod:`dataflywheel.training.loss` and
:class:`~dataflywheel.training.trainer.LoRATrainer`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataflywheel.errors import ConfigError

__all__ = ["AUTO", "RECIPES", "Recipe", "count_parameters", "epochs_for", "pick_recipe", "recipe_values"]

AUTO = "auto"


@dataclass(frozen=True)
class Recipe:
    """Default hyperparameters for one class of models (fields of :class:`~.config.TrainConfig`)."""

    name: str
    applies_to: str
    """Which models it is for, in words."""
    max_parameters: float | None
    """Picked by ``auto`` for models with fewer parameters than this (None: no upper bound; never picked by
    ``auto`` when :attr:`auto` is False)."""
    values: Mapping[str, Any]
    min_steps: int | None = None
    """Fewest optimizer steps a run should make: the epochs grow (within ``epoch_range``) to reach it."""
    epoch_range: tuple[int, int] = (2, 2)
    auto: bool = True
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


_OURS: dict[str, Any] = {
    "lr_schedule": "cosine",
    "warmup_ratio": 0.05,
    "class_balance": True,
    "select_best_epoch": True,
    "length_grouping": True,
}
"""What every recipe but ``blueprint`` turns on."""

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "tiny",
            "models under 0.5B parameters (SmolLM2-135M/360M)",
            0.5e9,
            {
                "learning_rate": 1e-3,
                "decision_weight": 3.0,
                "adapter_dim": 16,
                "alpha": 32,
                "dropout": 0.0,
                "layers_fraction": 0.5,
                "batch_size": 8,
                "prefix_gradients": False,
                **_OURS,
            },
            min_steps=120,
            epoch_range=(2, 6),
            notes="measured on SmolLM2-135M: lr 1e-4 leaves it at 0.00; 1e-3 with rank 16 learns the routing",
        ),
        Recipe(
            "small",
            "models of 0.5B-3B parameters (Qwen2.5-0.5B/1.5B, Llama-3.2-1B/3B)",
            3e9,
            {
                "learning_rate": 3e-4,
                "decision_weight": 3.0,
                "adapter_dim": 16,
                "alpha": 32,
                "dropout": 0.05,
                "batch_size": 8,
                **_OURS,
            },
            min_steps=60,
            epoch_range=(2, 5),
        ),
        Recipe(
            "large",
            "models of 3B parameters or more",
            None,
            {
                "learning_rate": 1e-4,
                "decision_weight": 2.0,
                "adapter_dim": 16,
                "alpha": 32,
                "dropout": 0.05,
                "batch_size": 16,
                **_OURS,
            },
            min_steps=40,
            epoch_range=(2, 3),
        ),
        Recipe(
            "blueprint",
            "NVIDIA's Data Flywheel Blueprint defaults (by name only)",
            None,
            {
                "learning_rate": 1e-4,
                "decision_weight": 1.0,
                "adapter_dim": 32,
                "alpha": 16,
                "dropout": 0.1,
                "batch_size": 16,
                "epochs": 2,
                "lr_schedule": "cosine",
                "warmup_ratio": 0.05,
                "class_balance": False,
                "select_best_epoch": False,
            },
            auto=False,
            notes="kept for comparison: tuned for 1-8B models on GPUs",
        ),
    )
}


def pick_recipe(name: str, parameters: int | None) -> Recipe:
    """The recipe called ``name``, or for ``auto`` the first whose size bound is above ``parameters`` (an
    unknown size gets the ``small`` recipe: the middle of the table)."""
    if name != AUTO:
        try:
            return RECIPES[name]
        except KeyError:
            known = ", ".join([AUTO, *RECIPES])
            raise ConfigError(f"training.recipe: unknown recipe {name!r} (known: {known})") from None
    if parameters is None:
        return RECIPES["small"]
    for recipe in RECIPES.values():
        if recipe.auto and (recipe.max_parameters is None or parameters < recipe.max_parameters):
            return recipe
    return RECIPES["large"]  # pragma: no cover - the last auto recipe has no bound


def epochs_for(recipe: Recipe, train_examples: int, batch_size: int) -> int:
    """Epochs that give at least ``recipe.min_steps`` optimizer steps, within ``recipe.epoch_range``."""
    low, high = recipe.epoch_range
    if not recipe.min_steps or train_examples <= 0:
        return low
    steps_per_epoch = math.ceil(train_examples / max(1, batch_size))
    return max(low, min(high, math.ceil(recipe.min_steps / steps_per_epoch)))


def recipe_values(recipe: Recipe, train_examples: int, batch_size: int | None = None) -> dict[str, Any]:
    """The recipe's hyperparameters for a dataset of ``train_examples`` rows (``batch_size``: the batch size
    the run will really use, when something above the recipe sets it)."""
    values = dict(recipe.values)
    if "epochs" not in values:
        values["epochs"] = epochs_for(recipe, train_examples, batch_size or int(values.get("batch_size", 8)))
    values["recipe"] = recipe.name
    return values


def count_parameters(model_dir: str | Path) -> int | None:
    """Parameters of the model in ``model_dir`` counted from its config (built on the meta device: no weights
    read, no memory used); None when the config cannot be read."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(str(model_dir))
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
        return int(sum(p.numel() for p in model.parameters()))
    except Exception:  # an unreadable config: the caller falls back to the middle recipe
        return None
