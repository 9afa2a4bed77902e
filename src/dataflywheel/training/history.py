"""The epochs of a LoRA run: what each measured, the best so far, and when to stop (pure; the trainer saves
the weights and stores the history in each checkpoint's ``state.json``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["BestEpoch", "EpochRecord", "History"]


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class EpochRecord:
    """One finished epoch."""

    epoch: int
    """1-based."""
    train_loss: float
    val_loss: float | None
    steps: int
    """Optimizer steps done by the end of this epoch (the run's, not the epoch's)."""
    val_function_name_accuracy: float | None = None
    """Only when the run selects its best epoch (``select_best_epoch``)."""
    val_per_class: dict[str, float] | None = None

    def to_json(self) -> JsonObject:
        out: JsonObject = asdict(self)
        if self.val_function_name_accuracy is None:  # the run does not select its best epoch
            del out["val_function_name_accuracy"], out["val_per_class"]
        else:
            out["val_per_class"] = dict(self.val_per_class or {})
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> EpochRecord:
        per_class = data.get("val_per_class")
        return cls(
            epoch=_int(data.get("epoch")),
            train_loss=_float(data.get("train_loss")) or 0.0,
            val_loss=_float(data.get("val_loss")),
            steps=_int(data.get("steps")),
            val_function_name_accuracy=_float(data.get("val_function_name_accuracy")),
            val_per_class={str(k): v for k, v in per_class.items() if isinstance(v, int | float)}
            if isinstance(per_class, Mapping)
            else None,
        )


@dataclass
class BestEpoch:
    """The epoch with the best validation accuracy so far, and the epochs since that did worse."""

    epoch: int
    accuracy: float
    val_loss: float | None
    since: int = 0

    def to_json(self) -> JsonObject:
        return {"epoch": self.epoch, "accuracy": self.accuracy, "val_loss": self.val_loss, "since": self.since}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> BestEpoch:
        accuracy = _float(data.get("accuracy")) or 0.0
        return cls(_int(data.get("epoch")), accuracy, _float(data.get("val_loss")), _int(data.get("since")))


@dataclass
class History:
    """A run's epochs so far (resumed runs continue their checkpoint's)."""

    epochs: list[EpochRecord] = field(default_factory=list)
    resumed_from_epoch: int | None = None
    best: BestEpoch | None = None
    stopped_early: bool = False

    @property
    def last(self) -> EpochRecord | None:
        return self.epochs[-1] if self.epochs else None

    def track_best(self, entry: EpochRecord, patience: int) -> bool:
        """Whether ``entry`` is the new best epoch (a tie goes to the later epoch: more training, and on a small
        validation split one row is noise); once ``patience`` epochs in a row did worse, the run stops."""
        accuracy = entry.val_function_name_accuracy or 0.0
        if self.best is None or accuracy >= self.best.accuracy:
            self.best = BestEpoch(entry.epoch, accuracy, entry.val_loss)
            return True
        self.best.since += 1
        if self.best.since >= patience:
            self.stopped_early = True
        return False

    def to_json(self) -> JsonObject:
        return {
            "epochs": [e.to_json() for e in self.epochs],
            "resumed_from_epoch": self.resumed_from_epoch,
            "best": self.best.to_json() if self.best is not None else None,
            "stopped_early": self.stopped_early,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> History:
        """The history a checkpoint stored (:meth:`to_json`)."""
        epochs = data.get("epochs")
        epochs = epochs if isinstance(epochs, list) else []
        best = data.get("best")
        resumed = data.get("resumed_from_epoch")
        return cls(
            epochs=[EpochRecord.from_json(e) for e in epochs if isinstance(e, dict)],
            resumed_from_epoch=resumed if isinstance(resumed, int) else None,
            best=BestEpoch.from_json(best) if isinstance(best, Mapping) else None,
            stopped_early=data.get("stopped_early") is True,
        )
