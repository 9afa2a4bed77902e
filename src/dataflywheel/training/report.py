"""How a LoRA run went, in the few facts a person reads: the recipe, the hyperparameters that decide the
result, the learning curve and the epoch kept (from the run's metrics; pure)."""

from __future__ import annotations

from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["training_summary"]


def training_summary(metrics: JsonObject) -> JsonObject:
    """What a LoRA run's metrics (:func:`~dataflywheel.training.run_metrics.run_metrics`) say about how it
    went: recipe, hyperparameters that decide the result, the learning curve (train/validation loss and
    validation function-name accuracy per epoch), the epoch kept."""
    config = metrics.get("config")
    config = config if isinstance(config, dict) else {}
    epochs = metrics.get("epochs")
    return {
        "recipe": metrics.get("recipe"),
        "hyperparameters": {
            k: config.get(k)
            for k in ("epochs", "batch_size", "learning_rate", "adapter_dim", "alpha", "dropout", "decision_weight")
            if k in config
        },
        "class_balance": config.get("class_balance"),
        "class_counts": metrics.get("class_counts"),
        "curve": [
            {k: e.get(k) for k in ("epoch", "train_loss", "val_loss", "val_function_name_accuracy")}
            for e in (epochs if isinstance(epochs, list) else [])
            if isinstance(e, dict)
        ],
        "best_epoch": metrics.get("best_epoch"),
        "stopped_early": metrics.get("stopped_early"),
    }
