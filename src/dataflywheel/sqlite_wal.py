"""Switching a SQLite connection to WAL mode, shared by the job store and the SQLite log store."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def set_wal(cursor: Any, timeout_s: float) -> None:
    """Switch ``cursor``'s connection (sqlite3's, or a DB-API cursor over it) to WAL. Switching needs an
    exclusive lock, and SQLite may answer "database is locked" at once (without its busy handler) while
    another connection opens the same new file: retried for up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
