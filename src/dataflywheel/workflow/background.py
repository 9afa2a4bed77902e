"""A task repeated from a daemon thread: the scheduler's tick and the service's search for orphaned jobs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from dataflywheel.errors import FlywheelError

__all__ = ["Repeating"]


@dataclass
class Repeating:
    """Calls ``task`` every ``interval_s()`` seconds from a daemon thread named ``name``, from :meth:`start`
    until :meth:`stop`. A :class:`FlywheelError` (a store unreachable for now) is logged as a warning, under
    the logger of the task's module, and the next round tries again; with ``survive_bugs`` any other exception
    is too (logged with its traceback)."""

    name: str
    task: Callable[[], object]
    interval_s: Callable[[], float]
    _: KW_ONLY
    failure: str
    """The message logged when a round fails."""
    survive_bugs: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        """Start the thread (once: a second call does nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        logger = logging.getLogger(self.task.__module__)
        while not self._stop.wait(self.interval_s()):
            try:
                self.task()
            except FlywheelError as exc:
                logger.warning("%s: %s", self.failure, exc)
            except Exception:
                if not self.survive_bugs:
                    raise
                logger.exception(self.failure)

    def stop(self, wait: float = 10.0) -> None:
        """End the loop; wait up to ``wait`` seconds for the round under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)
            self._thread = None
