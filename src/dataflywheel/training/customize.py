"""Customize a candidate on a dataset build: train a LoRA adapter and register it (what a job's
``customizing`` stage and ``flywheel train`` call)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataflywheel.datasets.artifacts import read_manifest
from dataflywheel.errors import ConfigError
from dataflywheel.models.registry import local_model_dir, resolve_model
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import Settings
from dataflywheel.training.adapters import AdapterInfo, adapter_name, register_adapter
from dataflywheel.training.config import TrainConfig
from dataflywheel.training.examples import read_rows
from dataflywheel.training.recipes import count_parameters
from dataflywheel.training.trainer import CancelFn, LoRATrainer, ProgressFn

__all__ = ["Customization", "customize", "training_runs_dir"]


@dataclass(frozen=True)
class Customization:
    adapter: AdapterInfo
    run_id: str
    run_dir: Path
    metrics: JsonObject


def training_runs_dir(settings: Settings) -> Path:
    return settings.home / "training"


def customize(
    settings: Settings,
    model: str,
    dataset_dir: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    name_suffix: str = "",
) -> Customization:
    """Train ``model`` (candidate name, alias, folder...) on ``dataset_dir``'s train/val rows and register
    the adapter as ``<candidate>-<workload>-<short id>``. Passing the ``run_id`` of an interrupted run resumes
    it from its last checkpoint. ``name_suffix`` tells apart adapters of one run id (a learning curve's)."""
    spec = resolve_model(model, settings)
    if spec.engine != "local" or not spec.customizable:
        raise ConfigError(f"candidate {model!r} is not customizable (only local models are trained)")
    model_dir = local_model_dir(spec, settings)
    run_id = run_id or uuid.uuid4().hex
    run_dir = training_runs_dir(settings) / run_id
    train_rows = read_rows(dataset_dir / "train.jsonl")
    val_path = dataset_dir / "val.jsonl"
    val_rows = read_rows(val_path) if val_path.is_file() else []
    config = TrainConfig.from_settings(
        settings, overrides, parameters=count_parameters(model_dir), train_examples=len(train_rows)
    )
    result = LoRATrainer(model_dir, config, run_dir, progress=progress, should_cancel=should_cancel).train(
        train_rows, val_rows
    )
    workload = _workload_of(dataset_dir)
    name = adapter_name(spec.name, workload, run_id) + name_suffix
    adapter = register_adapter(
        settings,
        name,
        result.adapter_dir,
        {
            "base_model": spec.name,
            "base_model_dir": model_dir,
            "candidate": spec.name,
            "workload_id": workload,
            "dataset": str(dataset_dir),
            "run_id": run_id,
            "final_train_loss": result.metrics.get("final_train_loss"),
            "final_val_loss": result.metrics.get("final_val_loss"),
            "recipe": result.metrics.get("recipe"),
            "best_epoch": result.metrics.get("best_epoch"),
        },
    )
    return Customization(adapter=adapter, run_id=run_id, run_dir=run_dir, metrics=result.metrics)


def _workload_of(dataset_dir: Path) -> str:
    try:
        manifest = read_manifest(dataset_dir)
    except (OSError, ValueError):  # a hand-made dataset folder without a manifest
        return dataset_dir.name
    workload = manifest.get("workload_id")
    return str(workload) if workload else dataset_dir.name
