"""What a finished LoRA run measured, as stored in its adapter folder (``training_metrics.json``; pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from dataflywheel.models.codec import ToolCallCodec
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.training.balance import class_counts
from dataflywheel.training.config import TrainConfig
from dataflywheel.training.examples import TokenizedRows
from dataflywheel.training.history import History

if TYPE_CHECKING:
    import torch

__all__ = ["run_metrics"]


def run_metrics(
    model_dir: str,
    config: TrainConfig,
    train: TokenizedRows,
    labels: Sequence[str],
    val: TokenizedRows,
    history: History,
    *,
    total_steps: int,
    trained_tokens: int,
    train_time: float,
    computed_tokens: int,
    prefix_batches: int,
    micro_batches: int,
    device: torch.device,
    dtype: torch.dtype,
    codec: ToolCallCodec,
    runtime: float,
) -> JsonObject:
    """The run's metrics: its data, its epochs (the learning curve), the epoch kept, speed and device."""
    last = history.last
    return {
        "base_model": str(model_dir),
        "config": config.model_dump(mode="json"),
        "train_examples": len(train.examples),
        "val_examples": len(val.examples),
        "skipped": [{"index": s.index, "reason": s.reason} for s in [*train.skipped, *val.skipped][:20]],
        "skipped_count": len(train.skipped) + len(val.skipped),
        "total_steps": total_steps,
        "epochs": [e.to_json() for e in history.epochs],
        "resumed_from_epoch": history.resumed_from_epoch,
        "recipe": config.recipe,
        "class_counts": dict(class_counts(labels)),
        "best_epoch": history.best.epoch if history.best is not None else None,
        "best_val_function_name_accuracy": history.best.accuracy if history.best is not None else None,
        "stopped_early": history.stopped_early,
        "final_train_loss": last.train_loss if last is not None else None,
        "final_val_loss": last.val_loss if last is not None else None,
        "trained_tokens": trained_tokens,
        "computed_tokens": computed_tokens,
        "shared_prefix_micro_batches": prefix_batches,
        "micro_batches": micro_batches,
        "tokens_per_s": trained_tokens / train_time if train_time else None,
        "train_seconds": train_time,
        "runtime_seconds": runtime,
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "codec": {"native_tools": codec.native_tools, "end_of_turn": codec.end_of_turn},
    }
