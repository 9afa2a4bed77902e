"""The LoRA trainer on the tiny model: learning, cancellation, checkpoints and resume, data checks."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from dataflywheel.training.config import TrainConfig
from dataflywheel.training.examples import TrainingDataError
from dataflywheel.training.history import EpochRecord, History
from dataflywheel.training.trainer import (
    LoRATrainer,
    TrainingCancelled,
    TrainingError,
    TrainProgress,
    by_length,
    epoch_batches,
    lr_factor,
    split_micro,
    top_layers,
)
from tests.training import routing_rows

FAST = {"batch_size": 4, "adapter_dim": 16, "alpha": 32, "learning_rate": 1e-2, "warmup_ratio": 0.0, "threads": 2}


def config(**changes: Any) -> TrainConfig:
    return TrainConfig(**{**FAST, "dropout": 0.0, "epochs": 2, **changes})


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return routing_rows(12, seed=5)


def test_lr_schedules() -> None:
    assert [lr_factor(s, 10, 2, "constant") for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    assert lr_factor(2, 10, 2, "cosine") == pytest.approx(1.0)
    assert lr_factor(9, 10, 2, "cosine") < 0.05
    assert lr_factor(6, 10, 2, "linear") == pytest.approx(0.5)


def test_epoch_batches_cover_every_example_once_and_are_seeded() -> None:
    batches = epoch_batches(10, 4, seed=1, epoch=0)
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert batches == epoch_batches(10, 4, seed=1, epoch=0)
    assert batches != epoch_batches(10, 4, seed=1, epoch=1)
    assert split_micro([1, 2, 3, 4, 5], 2) == [[1, 2, 3], [4, 5]]
    assert split_micro([1], 4) == [[1]]


def test_loss_goes_down_and_the_adapter_is_written(
    tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    seen: list[TrainProgress] = []
    cfg = config(epochs=4, lr_schedule="constant")
    result = LoRATrainer(tiny_model_dir, cfg, tmp_path / "run", progress=seen.append).train(rows[:8], rows[8:])
    epochs = result.metrics["epochs"]
    assert len(epochs) == 4
    # The tiny model's random output layer keeps every loss near ln(vocab) = 10.8: a 0.15 drop is learning.
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.15
    assert epochs[-1]["val_loss"] < epochs[0]["val_loss"] - 0.1
    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert (result.adapter_dir / "training_metrics.json").is_file()
    steps = [p for p in seen if p.phase == "training" and p.loss is not None]
    assert [p.steps_completed for p in steps] == list(range(1, 9))
    assert steps[-1].percent == 100.0 and steps[-1].total_steps == 8
    assert all(p.tokens_per_s and p.tokens_per_s > 0 for p in steps)
    assert seen[-1].phase == "done"
    assert result.metrics["shared_prefix_micro_batches"] == result.metrics["micro_batches"] == 8


def test_gradient_accumulation_takes_the_same_step(
    tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    one = LoRATrainer(tiny_model_dir, config(epochs=1), tmp_path / "a").train(rows[:4])
    two = LoRATrainer(tiny_model_dir, config(epochs=1, gradient_accumulation_steps=2), tmp_path / "b").train(rows[:4])
    a = load_file(str(one.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(two.adapter_dir / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    # Adam's first step is ~lr * sign(grad): only elements whose gradient is float noise may differ.
    differing = sum(int(((a[k] - b[k]).abs() > 1e-5).sum()) for k in a)
    total = sum(a[k].numel() for k in a)
    assert differing <= total * 0.002, f"{differing} of {total} weights differ"


def test_cancel_mid_epoch_stops_quickly_and_resume_continues(
    tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    cfg = config(epochs=3, dropout=0.1)
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def progress(p: TrainProgress) -> None:
        if p.phase == "training" and p.steps_completed == 4 and not cancel.is_set():  # in epoch 2 (3 steps/epoch)
            cancel.set()
            cancelled_at.append(time.monotonic())

    run = tmp_path / "run"
    with pytest.raises(TrainingCancelled):
        LoRATrainer(tiny_model_dir, cfg, run, progress=progress, should_cancel=cancel.is_set).train(rows)
    assert time.monotonic() - cancelled_at[0] < 5
    assert not (run / "adapter").exists()
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["epoch-0001"]

    resumed: list[TrainProgress] = []
    result = LoRATrainer(tiny_model_dir, cfg, run, progress=resumed.append).train(rows)
    assert result.metrics["resumed_from_epoch"] == 1
    first = next(p for p in resumed if p.phase == "training")
    assert first.steps_completed == 3 and first.epochs_completed == 1
    assert len(result.metrics["epochs"]) == 3

    # The same run without the interruption ends with the same weights (RNG and optimizer state restored).
    straight = LoRATrainer(tiny_model_dir, cfg, tmp_path / "straight").train(rows)
    a = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    b = load_file(str(straight.adapter_dir / "adapter_model.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


def test_a_run_folder_refuses_another_configuration(
    tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    LoRATrainer(tiny_model_dir, config(epochs=1), tmp_path / "run").train(rows[:4])
    with pytest.raises(TrainingError, match="different learning_rate"):
        LoRATrainer(tiny_model_dir, config(epochs=1, learning_rate=5e-2), tmp_path / "run").train(rows[:4])


def test_too_long_rows_are_reported_not_cut(tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    long_row = {
        **rows[0],
        "messages": [*rows[0]["messages"][:1], {"role": "user", "content": "please " * 400}, rows[0]["messages"][-1]],
    }
    result = LoRATrainer(tiny_model_dir, config(epochs=1, max_seq_length=1400), tmp_path / "run").train(
        [*rows[:4], long_row]
    )
    assert result.metrics["train_examples"] == 4
    assert result.metrics["skipped_count"] == 1
    skipped = result.metrics["skipped"][0]
    assert skipped["index"] == 4 and "> max_seq_length 1400" in skipped["reason"]
    with pytest.raises(TrainingDataError, match="no usable training row"):
        LoRATrainer(tiny_model_dir, config(epochs=1, max_seq_length=64), tmp_path / "short").train(rows[:2])


class _SavedModel:
    """Stands for the peft model in the best-epoch bookkeeping: records what it was asked to save."""

    def __init__(self) -> None:
        self.saved = 0

    def save_pretrained(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        self.saved += 1
        (Path(path) / "which.txt").write_text(str(self.saved))


def test_best_epoch_is_kept_and_patience_stops_the_run(tmp_path: Path) -> None:
    trainer = LoRATrainer("unused", config(patience=2), tmp_path)
    model = _SavedModel()
    history = History()
    curve = [0.5, 0.75, 0.75, 0.5, 0.625, 0.9]  # validation accuracy per epoch
    for epoch, accuracy in enumerate(curve, start=1):
        if history.track_best(EpochRecord(epoch, 1.0, 1.0, epoch, accuracy, {}), trainer.config.patience):
            trainer._save_best(model)
        if history.stopped_early:
            break
    # Epoch 3 ties epoch 2 and wins (later: more training); epochs 4 and 5 did worse: stop before epoch 6.
    assert history.best is not None and history.best.epoch == 3 and history.best.accuracy == 0.75
    assert epoch == 5 and history.stopped_early
    assert (tmp_path / "best" / "which.txt").read_text() == "3"


def test_best_epoch_selection_scores_each_epoch_and_publishes_the_best(
    tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    seen: list[TrainProgress] = []
    cfg = config(epochs=3, select_best_epoch=True, patience=3, class_balance=True, val_max_tokens=8)
    result = LoRATrainer(tiny_model_dir, cfg, tmp_path / "run", progress=seen.append).train(rows[:8], rows[8:])
    epochs = result.metrics["epochs"]
    assert len(epochs) == 3
    assert all(0.0 <= e["val_function_name_accuracy"] <= 1.0 and e["val_per_class"] for e in epochs)
    best = result.metrics["best_epoch"]
    assert best in (1, 2, 3)
    assert result.metrics["best_val_function_name_accuracy"] == epochs[best - 1]["val_function_name_accuracy"]
    assert "scoring" in {p.phase for p in seen}
    published = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    kept = load_file(str(tmp_path / "run" / "best" / "adapter_model.safetensors"))
    assert published.keys() == kept.keys()
    assert all(torch.equal(published[k], kept[k]) for k in published)
    assert sum(result.metrics["class_counts"].values()) == 8


@pytest.mark.jobs
def test_eval_delay_scores_only_after_the_delay_and_always_the_last_epoch(
    tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path
) -> None:
    seen: list[TrainProgress] = []
    cfg = config(epochs=3, select_best_epoch=True, patience=3, eval_delay=1, val_max_tokens=8)
    result = LoRATrainer(tiny_model_dir, cfg, tmp_path / "run", progress=seen.append).train(rows[:8], rows[8:])
    epochs = result.metrics["epochs"]
    assert [("val_function_name_accuracy" in e) for e in epochs] == [False, True, True]
    assert all(e["val_loss"] is not None for e in epochs)  # the loss curve stays whole
    assert [p.epochs_completed for p in seen if p.phase == "scoring"] == [2, 3]
    assert result.metrics["best_epoch"] in (2, 3)

    # A delay past the last epoch still scores the last one: best-epoch selection always has a score.
    late = config(epochs=2, select_best_epoch=True, eval_delay=5, val_max_tokens=8)
    result = LoRATrainer(tiny_model_dir, late, tmp_path / "late").train(rows[:8], rows[8:])
    assert [("val_function_name_accuracy" in e) for e in result.metrics["epochs"]] == [False, True]
    assert result.metrics["best_epoch"] == 2


def test_top_layers_and_length_grouping() -> None:
    assert top_layers(30, 1.0) is None
    assert top_layers(30, 0.5) == list(range(15, 30))
    assert top_layers(2, 0.1) == [1]
    batches = [[0, 1], [2, 3], [4, 5], [6]]
    lengths = [50, 10, 40, 20, 30, 60, 5]
    grouped = by_length(batches, lengths, window=4)
    assert sorted(i for b in grouped for i in b) == list(range(7))  # the same draws ...
    assert sorted(len(b) for b in grouped) == [1, 2, 2, 2]  # ... and batch sizes
    for batch in grouped:  # each batch holds rows adjacent in length order
        ranks = sorted(sorted(range(7), key=lambda i: lengths[i]).index(i) for i in batch)
        assert ranks == list(range(ranks[0], ranks[0] + len(ranks)))


def test_lora_on_the_top_layers_only(tiny_model_dir: str, rows: list[dict[str, Any]], tmp_path: Path) -> None:
    result = LoRATrainer(tiny_model_dir, config(epochs=1, layers_fraction=0.5, length_grouping=True), tmp_path).train(
        rows[:4]
    )
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert weights and all(".layers.1." in k for k in weights)  # the tiny model has layers 0 and 1
