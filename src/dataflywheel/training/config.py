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
from pydantic.fields import FieldInfo

from dataflywheel.errors import ConfigError
from dataflywheel.settings import LoRASettings, Settings, TrainingSettings, format_validation_error
from dataflywheel.training.recipes import RECIPES, pick_recipe, recipe_values

__all__ = ["FIXED_KEYS", "LORA_ALIASES", "TrainConfig", "flatten_overrides"]

_BLUEPRINT = RECIPES["blueprint"].values


def _default(name: str) -> Any:
    """One place per default: what the blueprint recipe sets, else the ``training``/``lora`` setting's default
    (so ``TrainConfig()`` with no arguments is the blueprint's run)."""
    if name in _BLUEPRINT:
        return _BLUEPRINT[name]
    return _setting(name).default


def _doc(name: str) -> str | None:
    """The ``training``/``lora`` setting's description: one text for the setting, the run and the API's schema."""
    return _setting(name).description


def _setting(name: str) -> FieldInfo:
    return TrainingSettings.model_fields.get(name) or LoRASettings.model_fields[name]


# The blueprint's names for our LoRA keys.
LORA_ALIASES = {
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
FIXED_KEYS = {"training_type": "sft", "finetuning_type": "lora"}


class TrainConfig(BaseModel):
    """Everything that decides a LoRA run's result and speed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(_default("epochs"), ge=1, description=_doc("epochs"))
    batch_size: int = Field(_default("batch_size"), ge=1, description=_doc("batch_size"))
    gradient_accumulation_steps: int = Field(
        _default("gradient_accumulation_steps"), ge=1, description=_doc("gradient_accumulation_steps")
    )
    learning_rate: float = Field(_default("learning_rate"), gt=0, description=_doc("learning_rate"))
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        _default("lr_schedule"), description=_doc("lr_schedule")
    )
    warmup_ratio: float = Field(_default("warmup_ratio"), ge=0, lt=1, description=_doc("warmup_ratio"))
    max_seq_length: int = Field(_default("max_seq_length"), ge=16, description=_doc("max_seq_length"))
    seed: int = Field(_default("seed"), description=_doc("seed"))
    adapter_dim: int = Field(_default("adapter_dim"), ge=1, description=_doc("adapter_dim"))
    alpha: int = Field(_default("alpha"), ge=1, description=_doc("alpha"))
    dropout: float = Field(_default("dropout"), ge=0, lt=1, description=_doc("dropout"))
    target_modules: str | list[str] = Field(_default("target_modules"), description=_doc("target_modules"))
    recipe: str = Field("custom", description="The recipe the defaults came from (see training.recipes).")
    class_balance: bool = Field(_default("class_balance"), description=_doc("class_balance"))
    balance_power: float = Field(
        0.5,
        ge=0,
        le=1,
        description="How far class balance goes: each class is drawn in proportion to count ** (1 - power) "
        "(0: as logged, 0.5: square-root balance, 1: every class equally often).",
    )
    decision_weight: float = Field(
        _default("decision_weight"),
        ge=1.0,
        le=100.0,
        description="Loss weight of the tokens that carry an answer's decision (a call's opening through the "
        "tool's name, a text answer's first token); 1: every completion token alike.",
    )
    select_best_epoch: bool = Field(_default("select_best_epoch"), description=_doc("select_best_epoch"))
    patience: int = Field(
        2, ge=1, description="Epochs without a better validation score before training stops (best-epoch selection)."
    )
    eval_delay: int = Field(
        0,
        ge=0,
        description="Epochs trained before the first validation scoring (best-epoch selection; Hugging Face's "
        "eval_delay): an early epoch is never the best of a decaying schedule, and scoring one costs a "
        "generation pass. Validation loss is still computed after every epoch.",
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
    prompt_gradients: bool = Field(
        True,
        description="With frozen_cache and prefix_gradients false: backpropagate through each row's own prompt "
        "tokens too. False: a row's prompt runs forward only, as context made by the adapter as it is, and only "
        "the positions that predict its completion carry gradient into the adapter (a routing row's prompt is "
        "about half of its own tokens): the same loss, a cheaper and approximate step.",
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
    device: str = Field(
        "auto", description="Where the run computes: auto (CUDA when available, else cpu) or a torch device (cuda:1)."
    )
    dtype: str = Field(
        "auto",
        description="Weights' precision: auto (bfloat16 on CUDA, float16 without bfloat16 support; bfloat16 on CPUs "
        "with native bfloat16, else float32) | float32 | bfloat16 | float16.",
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads torch uses; null: every core this process may use."
    )

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
                target = LORA_ALIASES.get(sub)
                if target is None:
                    raise ConfigError(f"training_config.lora.{sub}: unknown key (known: {', '.join(LORA_ALIASES)})")
                if sub_value is not None:
                    out[target] = sub_value
        elif key in FIXED_KEYS:
            if value != FIXED_KEYS[key]:
                raise ConfigError(f"training_config.{key}: only {FIXED_KEYS[key]!r} is supported (got {value!r})")
        elif key in LORA_ALIASES:
            out[LORA_ALIASES[key]] = value
        elif key in known:
            out[key] = value
        else:
            raise ConfigError(f"training_config.{key}: unknown key (known: {', '.join(sorted(known))})")
    return out
