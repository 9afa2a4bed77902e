"""Training hyperparameters: settings plus a job's overrides, validated."""

from __future__ import annotations

import pytest

from dataflywheel.errors import ConfigError
from dataflywheel.settings import Settings, load_settings
from dataflywheel.training.config import TrainConfig


def test_defaults_come_from_the_settings(settings: Settings) -> None:
    config = TrainConfig.from_settings(settings)
    assert (config.epochs, config.batch_size, config.learning_rate) == (2, 16, 1e-4)
    assert (config.adapter_dim, config.dropout, config.target_modules) == (32, 0.1, "all-linear")


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
    assert TrainConfig.from_settings(settings, {"epochs": None}).epochs == 2  # None: not overridden


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
