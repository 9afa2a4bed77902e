"""LoRA customization of candidates: the loss (with the shared-prefix computation), the trainer, the adapter
registry and the one-call :func:`customize` a job stage and ``flywheel train`` use."""

from dataflywheel.training.adapters import AdapterInfo, AdapterNotFoundError, adapter_name, get_adapter, list_adapters
from dataflywheel.training.config import TrainConfig
from dataflywheel.training.customize import Customization, customize
from dataflywheel.training.trainer import LoRATrainer, TrainingCancelled, TrainingError, TrainProgress, TrainResult

__all__ = [
    "AdapterInfo",
    "AdapterNotFoundError",
    "Customization",
    "LoRATrainer",
    "TrainConfig",
    "TrainProgress",
    "TrainResult",
    "TrainingCancelled",
    "TrainingError",
    "adapter_name",
    "customize",
    "get_adapter",
    "list_adapters",
]
