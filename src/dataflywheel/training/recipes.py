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

``tiny`` adapts the top half of the decoder layers only (``layers_fraction`` 0.5: no backward pass below),
groups rows of similar length, and spends a step's compute on what trains the adapter:

* the layers below the adapter never change, so they run once per run (``frozen_cache``, exact: the shared
  prefix once, each row the first time it is drawn; :mod:`dataflywheel.training.frozen`);
* the shared prompt prefix runs forward only (``prefix_gradients`` False), its adapted layers' keys/values
  recomputed every 8 steps (``prefix_refresh_steps``);
* each row's own prompt runs forward only too (``prompt_gradients`` False): only the positions that predict
  the completion backpropagate. The loss is exact; the gradient leaves out what flows through the prompt's
  keys/values;
* the first epoch is not scored on the validation set (``eval_delay`` 1; its loss still is): on the demo's
  data it scored 0.37-0.41 against 0.59-0.70 later, and a scoring pass costs ~13 s.

Measured on the demo's data (240 train rows, 2 cores; ``benchmarks/recipe_run.py`` on the datasets a
``flywheel demo`` built): with a refresh every 4 steps, a step of 8 rows ~3 s (every 4th ~6 s, the prefix
refresh) against ~5 s for the same step running every layer with the prefix forward only, and ~8.5 s with
prefix gradients. Customized eval on the demo's 30 held-out records: 0.833 after 120 steps (best epoch 3 of
4; validation 0.41, 0.59, 0.70, 0.63). With the refresh every 8 steps and the completion pass on the explicit
attention (a step's backward 0.9 s instead of 1.3 s): epochs of 84 s (the first 127 s: it fills the frozen
cache), validation loss ~8 s and scoring ~13 s an epoch; ``make demo`` from a fresh clone: see the README.
Measured and not adopted (same data): 90 steps at lr 1.5e-3, 0.767; the top third of the layers for 90 steps,
0.700 (steps ~2.2 s). Earlier, with prefix gradients and every step exact: 0.800 after 120 steps at ~6.5 s.
Every recipe except ``blueprint`` turns on class balance, decision-token weighting and best-epoch selection
(see :mod:`dataflywheel.training.balance`, :mod:`dataflywheel.training.loss` and
:class:`~dataflywheel.training.trainer.LoRATrainer`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from dataflywheel.errors import ConfigError
from dataflywheel.records.jsonvalue import JsonObject

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


_OURS: Final[JsonObject] = {
    "lr_schedule": "cosine",
    "warmup_ratio": 0.05,
    "class_balance": True,
    "select_best_epoch": True,
    "length_grouping": True,
}
"""What every recipe but ``blueprint`` turns on."""

_SMALL: Final = Recipe(
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
)

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
                "frozen_cache": True,
                "prompt_gradients": False,
                "prefix_refresh_steps": 8,
                "eval_delay": 1,
                **_OURS,
            },
            min_steps=120,
            epoch_range=(2, 6),
            notes="measured on SmolLM2-135M: lr 1e-4 leaves it at 0.00; 1e-3 with rank 16 learns the routing",
        ),
        _SMALL,
        # The small recipe, gentler: a lower learning rate and head weight, larger batches, fewer steps.
        replace(
            _SMALL,
            name="large",
            applies_to="models of 3B parameters or more",
            max_parameters=None,
            values={**_SMALL.values, "learning_rate": 1e-4, "decision_weight": 2.0, "batch_size": 16},
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


def recipe_values(recipe: Recipe, train_examples: int, batch_size: int | None = None) -> JsonObject:
    """The recipe's hyperparameters for a dataset of ``train_examples`` rows (``batch_size``: the batch size
    the run will really use, when something above the recipe sets it)."""
    values: JsonObject = dict(recipe.values)
    if "epochs" not in values:
        size = values.get("batch_size", 8)
        values["epochs"] = epochs_for(recipe, train_examples, batch_size or (size if isinstance(size, int) else 8))
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
