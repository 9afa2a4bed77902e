"""One progress protocol for the long work: ingestion, dataset builds, evaluations, LoRA runs, the feedback loop.

A producer takes a ``progress`` callback (:data:`ProgressFn`) and calls it with a :class:`Progress` event:
which ``stage`` of the work it is in, how much of it is ``done`` out of ``total`` (None while unknown), in
what ``unit``, an optional human ``message``, and the seconds ``elapsed`` with the ``eta_s`` when it can tell.
A producer with more to say sends a subclass that adds its own facts (the eval's failed requests, a LoRA
run's epochs and loss), so a consumer that only shows a bar reads the same five fields from every one of them:

===================================  ==============================  ==================================
producer                             event                           stages (unit)
===================================  ==============================  ==================================
``ingest.jsonl.load_stream``         :class:`~dataflywheel.ingest.jsonl.IngestProgress`   ``load`` (bytes)
``datasets.build.build_datasets``    :class:`Progress`               ``scan``, ``eval``, ``icl``,
                                                                     ``train``, ``val`` (records)
``evaluation.runner.run_eval``       :class:`~dataflywheel.evaluation.runner.EvalProgress` ``eval`` (samples)
``training.trainer.LoRATrainer``     :class:`~dataflywheel.training.progress.TrainProgress` ``loading``,
                                                                     ``training``, ``validating``... (steps)
``feedback.pipeline.run_feedback``   :class:`Progress`               ``inference``, ``judging``,
                                                                     ``write-back`` (records)
===================================  ==============================  ==================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressFn", "ignore_progress"]


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Where a piece of long work stands."""

    stage: str
    """The step of the work (``scan``, ``inference``, ``training``...): each producer documents its own."""
    done: int
    """Units of the stage done so far."""
    total: int | None = None
    """Units the stage has in all; None while unknown (a scan of a source of unknown length)."""
    unit: str = "items"
    """What ``done`` and ``total`` count: ``records``, ``samples``, ``steps``, ``bytes``..."""
    message: str = ""
    """A short human note (empty: nothing more to say than the numbers)."""
    elapsed_s: float = 0.0
    """Seconds since the work (not the stage) started; 0 when the producer does not measure it."""
    eta_s: float | None = None
    """Seconds left, when the producer can estimate them."""

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1]; None while the total is unknown (a total of 0 counts as finished)."""
        if self.total is None:
            return None
        return min(1.0, self.done / self.total) if self.total else 1.0

    @property
    def percent(self) -> float | None:
        """The :attr:`fraction` in percent."""
        fraction = self.fraction
        return None if fraction is None else 100.0 * fraction

    def describe(self) -> str:
        """One line for a log or a terminal: ``scan: 2000/10000 records (20%)``."""
        of = f"/{self.total}" if self.total is not None else ""
        text = f"{self.stage}: {self.done}{of} {self.unit}"
        if self.percent is not None:
            text += f" ({self.percent:.0f}%)"
        if self.eta_s is not None:
            text += f", eta {self.eta_s:.0f} s"
        return f"{text}; {self.message}" if self.message else text


ProgressFn = Callable[[Progress], None]
"""A progress callback. Producers call it from their own thread; it should return quickly (throttle writes
to a store on the consumer's side). A producer that sends a subclass types its callback with it
(``Callable[[EvalProgress], None]``...): a :data:`ProgressFn`, which reads only the common fields, fits
every producer."""


def ignore_progress(_event: Progress) -> None:
    """The callback of a caller that does not follow the progress."""
    return None
