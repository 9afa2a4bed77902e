"""Hyperparameters of one LoRA run: the ``training`` and ``lora`` settings plus a job's overrides.

A job's ``training_config`` overrides really apply (the blueprint accepted the key and ignored it). Both our
flat keys (``epochs``, ``adapter_dim``, ...) and the blueprint's hyperparameter shape
(``{"epochs": 2, "lora": {"adapter_dim": 32, "adapter_dropout": 0.1}}``) are accepted; an unknown key or a bad
value is a :class:`~dataflywheel.errors.ConfigError` that names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dataflywheel.errors import ConfigError
from dataflywheel.settings import LoRASettings, Settings, TrainingSettings, format_validation_error
from dataflywheel.training.recipes import pick_recipe, recipe_values

__all__ = ["TrainConfig"]

# The blueprint's names for our LoRA keys.
_LORA_ALIASES = {
    "adapter_dim": "adapter_dim",
    "rank": "adapter_dim",
    "r": "adapter_dim",
    "adapter_dropout": "dropout",
    "dropout": "dropout",
    "alpha": "alpha",
    "lora_alpha": "alpha",
    "target_modules": "target_modules",
}
# Keys of the blueprint's hyperparameters that only state what we always do.
_FIXED = {"training_type": "sft", "finetuning_type": "lora"}


class TrainConfig(BaseModel):
    """Everything that decides a LoRA run's result and speed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(2, ge=1)
    batch_size: int = Field(16, ge=1, description="Examples per optimizer step.")
    gradient_accumulation_steps: int = Field(
        1, ge=1, description="Micro-batches a step's examples are split into (to bound memory)."
    )
    learning_rate: float = Field(1e-4, gt=0)
    lr_schedule: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    max_seq_length: int = Field(4096, ge=16)
    seed: int = 42
    adapter_dim: int = Field(32, ge=1, description="LoRA rank.")
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    recipe: str = Field("custom", description="The recipe the defaults came from (see training.recipes).")
    class_balance: bool = Field(False, description="Oversample rare classes of the train split.")
    balance_power: float = Field(
        0.5,
        ge=0,
        le=1,
        description="How far class balance goes: each class is drawn in proportion to count ** (1 - power) "
        "(0: as logged, 0.5: square-root balance, 1: every class equally often).",
    )
    decision_weight: float = Field(
        1.0,
        ge=1.0,
        le=100.0,
        description="Loss weight of the tokens that carry an answer's decision (a call's opening through the "
        "tool's name, a text answer's first token); 1: every completion token alike.",
    )
    select_best_epoch: bool = Field(
        False, description="Score the validation split after each epoch; keep the best epoch's adapter."
    )
    patience: int = Field(
        2, ge=1, description="Epochs without a better validation score before training stops (best-epoch selection)."
    )
    val_max_tokens: int = Field(
        24, ge=4, description="Tokens generated per validation row when scoring (enough for the tool's name)."
    )
    layers_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Share of the decoder layers LoRA adapts, from the top (1: all). The layers below get no "
        "backward pass: 0.5 makes a step ~1/3 cheaper.",
    )
    length_grouping: bool = Field(
        False, description="Batch rows of similar length together within a few steps (less padding)."
    )
    shared_prefix: bool = Field(True, description="Run a micro-batch's shared prompt prefix once.")
    min_prefix_tokens: int = Field(32, ge=1, description="Shortest shared prefix worth running once.")
    prefix_gradients: bool = Field(
        True,
        description="Backpropagate through the shared prefix too. False: the prefix runs forward only, with the "
        "adapter as it is (its keys/values are context, as at serving time), and only each row's own tokens "
        "train the adapter: a step costs about half on a routing workload's ~1,000-token prefix.",
    )
    frozen_cache: bool = Field(
        False,
        description="With layers_fraction < 1: compute the layers below the adapter once per run (the shared "
        "prefix once, each row the first time it is drawn) and start every step at the first adapted layer. "
        "Same loss and gradients; a step skips the lower layers' forward pass (1.19x over 2 epochs of 48 rows in "
        "benchmarks/frozen_layers.py; off by default: on the demo's class-balanced data it did not pay).",
    )
    prefix_refresh_steps: int = Field(
        1,
        ge=1,
        description="With frozen_cache and prefix_gradients false: recompute the adapted layers' keys/values of "
        "the shared prefix every this many optimizer steps, reusing them in between (1: every step, exact; "
        "more: the rows attend to a prefix made with an adapter up to that many steps old, a cheaper step).",
    )
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = Field(None, ge=1)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        overrides: Mapping[str, Any] | None = None,
        *,
        parameters: int | None = None,
        train_examples: int = 0,
    ) -> TrainConfig:
        """The run's hyperparameters: the recipe (``training.recipe`` or a job's ``recipe``; ``auto`` picks by
        ``parameters``, the model's size, and sets the epochs from ``train_examples``), then every value set
        in the ``training`` and ``lora`` settings, then a job's ``training_config``."""
        return cls.from_sections(
            settings.training, settings.lora, overrides, parameters=parameters, train_examples=train_examples
        )

    @classmethod
    def from_sections(
        cls,
        training: TrainingSettings,
        lora: LoRASettings,
        overrides: Mapping[str, Any] | None = None,
        *,
        parameters: int | None = None,
        train_examples: int = 0,
    ) -> TrainConfig:
        explicit = {
            k: v for k, v in {**training.model_dump(), **lora.model_dump()}.items() if v is not None and k != "recipe"
        }
        job = flatten_overrides(overrides or {})
        recipe = pick_recipe(str(job.pop("recipe", None) or training.recipe), parameters)
        batch_size = job.get("batch_size", explicit.get("batch_size"))
        values: dict[str, Any] = {**recipe_values(recipe, train_examples, batch_size), **explicit, **job}
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, prefix="training_config", env_hint=False)) from None

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainConfig:
        try:
            return TrainConfig(**(self.model_dump() | flatten_overrides(overrides)))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, prefix="training_config", env_hint=False)) from None


def flatten_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``training_config`` keys as :class:`TrainConfig` fields; None values are ignored."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"training_config: expected an object, got {type(overrides).__name__}")
    known = set(TrainConfig.model_fields)
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "lora":
            if not isinstance(value, Mapping):
                raise ConfigError(f"training_config.lora: expected an object, got {type(value).__name__}")
            for sub, sub_value in value.items():
                target = _LORA_ALIASES.get(sub)
                if target is None:
                    raise ConfigError(f"training_config.lora.{sub}: unknown key (known: {', '.join(_LORA_ALIASES)})")
                if sub_value is not None:
                    out[target] = sub_value
        elif key in _FIXED:
            if value != _FIXED[key]:
                raise ConfigError(f"training_config.{key}: only {_FIXED[key]!r} is supported (got {value!r})")
        elif key in _LORA_ALIASES:
            out[_LORA_ALIASES[key]] = value
        elif key in known:
            out[key] = value
        else:
            raise ConfigError(f"training_config.{key}: unknown key (known: {', '.join(sorted(known))})")
    return out
