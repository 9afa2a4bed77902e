"""Training hyperparameters: settings plus a job's overrides, validated."""

from __future__ import annotations

import pytest

from dataflywheel.errors import ConfigError
from dataflywheel.settings import LoRASettings, Settings, TrainingSettings, load_settings
from dataflywheel.training.config import TrainConfig
from dataflywheel.training.recipes import RECIPES


def test_without_a_model_size_the_middle_recipe_applies(settings: Settings) -> None:
    config = TrainConfig.from_settings(settings)
    assert config.recipe == "small"
    assert (config.batch_size, config.learning_rate, config.adapter_dim, config.alpha) == (8, 3e-4, 16, 32)
    assert config.class_balance and config.select_best_epoch
    assert config.target_modules == "all-linear"


@pytest.mark.parametrize(
    ("parameters", "recipe", "lr"),
    [(135_000_000, "tiny", 1e-3), (494_000_000, "tiny", 1e-3), (1_200_000_000, "small", 3e-4), (8e9, "large", 1e-4)],
)
def test_auto_picks_the_recipe_by_model_size(settings: Settings, parameters: int, recipe: str, lr: float) -> None:
    config = TrainConfig.from_settings(settings, parameters=int(parameters), train_examples=200)
    assert (config.recipe, config.learning_rate) == (recipe, lr)


@pytest.mark.parametrize(("examples", "epochs"), [(40, 6), (120, 6), (180, 6), (240, 4), (480, 2), (10_000, 2)])
def test_small_datasets_get_more_epochs(settings: Settings, examples: int, epochs: int) -> None:
    """The tiny recipe wants >= 120 optimizer steps at batch 8, within 2-6 epochs."""
    config = TrainConfig.from_settings(settings, parameters=135_000_000, train_examples=examples)
    assert config.epochs == epochs


def test_the_blueprint_recipe_by_name(settings: Settings) -> None:
    for config in (
        TrainConfig.from_settings(settings, {"recipe": "blueprint"}, parameters=135_000_000, train_examples=180),
        TrainConfig.from_settings(
            load_settings(training={"recipe": "blueprint"}), parameters=135_000_000, train_examples=180
        ),
    ):
        assert (config.epochs, config.batch_size, config.learning_rate) == (2, 16, 1e-4)
        assert (config.adapter_dim, config.alpha, config.dropout) == (32, 16, 0.1)
        assert not config.class_balance and not config.select_best_epoch


def test_explicit_settings_win_over_the_recipe_and_jobs_over_both() -> None:
    settings = load_settings(training={"learning_rate": 5e-4, "batch_size": 4}, lora={"alpha": 8})
    config = TrainConfig.from_settings(settings, parameters=135_000_000, train_examples=120)
    assert (config.learning_rate, config.batch_size, config.alpha, config.adapter_dim) == (5e-4, 4, 8, 16)
    assert config.epochs == 4  # 30 steps an epoch at batch 4 reach 120 steps in 4 epochs
    job = TrainConfig.from_settings(settings, {"learning_rate": 2e-3, "epochs": 1}, parameters=135_000_000)
    assert (job.learning_rate, job.epochs, job.alpha) == (2e-3, 1, 8)


def test_an_unknown_recipe_is_named() -> None:
    with pytest.raises(ConfigError, match="recipe"):
        load_settings(training={"recipe": "fastest"})
    with pytest.raises(ConfigError, match="unknown recipe 'fastest'"):
        TrainConfig.from_settings(load_settings(), {"recipe": "fastest"})


def test_settings_sections_are_read(tmp_path: object) -> None:
    settings = load_settings(training={"epochs": 5, "seed": 7}, lora={"adapter_dim": 8})
    config = TrainConfig.from_settings(settings)
    assert (config.epochs, config.seed, config.adapter_dim) == (5, 7, 8)


def test_flat_and_blueprint_overrides_apply(settings: Settings) -> None:
    flat = TrainConfig.from_settings(settings, {"epochs": 1, "adapter_dim": 4, "lr_schedule": "linear"})
    assert (flat.epochs, flat.adapter_dim, flat.lr_schedule) == (1, 4, "linear")
    blueprint = TrainConfig.from_settings(
        settings,
        {
            "training_type": "sft",
            "finetuning_type": "lora",
            "epochs": 3,
            "batch_size": 8,
            "learning_rate": 0.0002,
            "lora": {"adapter_dim": 16, "adapter_dropout": 0.05},
        },
    )
    assert (blueprint.epochs, blueprint.batch_size, blueprint.learning_rate) == (3, 8, 0.0002)
    assert (blueprint.adapter_dim, blueprint.dropout) == (16, 0.05)
    assert TrainConfig.from_settings(settings, {"epochs": None}).epochs == 2  # None: not overridden (recipe's)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"epochs": 0}, "training_config.epochs"),
        ({"learning_rate": -1}, "training_config.learning_rate"),
        ({"epochz": 2}, "training_config.epochz: unknown key"),
        ({"lora": {"rank_x": 2}}, "training_config.lora.rank_x: unknown key"),
        ({"lora": 3}, "training_config.lora: expected an object"),
        ({"finetuning_type": "full"}, "training_config.finetuning_type: only 'lora'"),
        ({"lr_schedule": "step"}, "training_config.lr_schedule"),
    ],
)
def test_bad_overrides_name_the_key(settings: Settings, overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        TrainConfig.from_settings(settings, overrides)


def test_each_default_and_description_has_one_source() -> None:
    """A bare TrainConfig is the blueprint's run: the recipe's values where the blueprint recipe sets one, else
    the training/lora settings' defaults; a key that is also a setting shows the setting's description."""
    blueprint = RECIPES["blueprint"].values
    settings = TrainingSettings.model_fields | LoRASettings.model_fields
    for name, field in TrainConfig.model_fields.items():
        if name in blueprint:
            assert field.default == blueprint[name], name
        elif name in settings and name != "recipe":
            assert field.default == settings[name].default, name
        if name in settings and name != "recipe":
            assert field.description == settings[name].description, name
        assert field.description, name
