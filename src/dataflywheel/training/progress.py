"""A LoRA run's progress event: :class:`~dataflywheel.progress.Progress` (unit ``steps``) with the epochs,
the last losses and the training speed. The trainer sends one after every step and every phase change."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dataflywheel.progress import Progress
from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["TrainProgress"]


@dataclass(frozen=True, kw_only=True)
class TrainProgress(Progress):
    """Where a run stands. ``stage`` is the phase: ``loading``, ``training``, ``validating`` (loss),
    ``scoring`` (function-name accuracy for best-epoch selection), ``checkpointing`` or ``done``; ``done``
    and ``total`` count optimizer steps."""

    unit: str = "steps"
    total: int = 0
    epochs_completed: int
    total_epochs: int
    loss: float | None = None
    """Mean completion-token loss of the last step."""
    val_loss: float | None = None
    tokens_per_s: float | None = None
    """Example tokens (prompt + completion, no padding) trained per second."""

    @property
    def phase(self) -> str:
        """The :attr:`stage` (the name this event had before the common progress protocol)."""
        return self.stage

    @property
    def steps_completed(self) -> int:
        return self.done

    @property
    def total_steps(self) -> int:
        return self.total

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0

    def to_dict(self) -> JsonObject:
        """The event as JSON: its fields under their former names too (``phase``, ``steps_completed``,
        ``total_steps``), and ``percent``."""
        return {
            **asdict(self),
            "phase": self.phase,
            "steps_completed": self.done,
            "total_steps": self.total,
            "percent": round(self.percent, 2),
        }
