"""The run history the trainer keeps per epoch: best-epoch tracking, early stop, and its checkpoint form."""

from __future__ import annotations

import json

from dataflywheel.training.history import BestEpoch, EpochRecord, History


def _epoch(n: int, accuracy: float | None, val_loss: float | None = 0.5) -> EpochRecord:
    return EpochRecord(n, 1.0 / n, val_loss, 10 * n, accuracy, {"A": accuracy or 0.0} if accuracy is not None else None)


def test_a_tie_goes_to_the_later_epoch_and_patience_stops_the_run() -> None:
    history = History()
    assert history.track_best(_epoch(1, 0.5), patience=2)
    assert history.track_best(_epoch(2, 0.5), patience=2)  # a tie: the later epoch is kept
    assert history.best == BestEpoch(2, 0.5, 0.5, 0)
    assert not history.track_best(_epoch(3, 0.4), patience=2)
    assert not history.stopped_early
    assert not history.track_best(_epoch(4, 0.3), patience=2)
    assert history.stopped_early
    assert history.best is not None and history.best.epoch == 2 and history.best.since == 2


def test_the_checkpoint_form_round_trips_through_json() -> None:
    history = History(resumed_from_epoch=1)
    for record in (_epoch(1, 0.25), _epoch(2, 0.75)):
        history.track_best(record, patience=3)
        history.epochs.append(record)
    stored = json.loads(json.dumps(history.to_json()))
    assert History.from_json(stored) == history
    assert stored["epochs"][0] == {
        "epoch": 1,
        "train_loss": 1.0,
        "val_loss": 0.5,
        "steps": 10,
        "val_function_name_accuracy": 0.25,
        "val_per_class": {"A": 0.25},
    }


def test_an_epoch_without_scoring_stores_no_accuracy_keys() -> None:
    record = EpochRecord(1, 0.9, None, 4)
    assert record.to_json() == {"epoch": 1, "train_loss": 0.9, "val_loss": None, "steps": 4}
    assert EpochRecord.from_json(record.to_json()) == record


def test_a_malformed_history_reads_as_empty_fields() -> None:
    history = History.from_json({"epochs": "x", "best": 3, "stopped_early": "yes"})
    assert history == History()
