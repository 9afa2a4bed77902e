"""A resource that a ``with`` block closes: clients, deployment managers, embedders, log stores."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Self

__all__ = ["Closing"]


class Closing(ABC):
    """``with resource as r:`` hands the resource itself to the block and calls :meth:`close` after it."""

    @abstractmethod
    def close(self) -> None:
        """Let go of what the resource holds (connections, threads, servers)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
