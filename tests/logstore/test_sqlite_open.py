"""Opening the SQLite log store while other processes open it too (the proxy's log writer and a reader
starting at once, several workers): every open succeeds and the file ends in WAL mode with its table."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from dataflywheel.logstore.sqlite import SQLiteLogStore


def _open_once(path: Path, start: Any) -> str:
    start.wait()
    try:
        SQLiteLogStore(path).close()
    except Exception as exc:  # returned and asserted by the test
        return repr(exc)
    return ""


def test_many_processes_opening_a_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(6) as pool:
        start = manager.Barrier(6)
        for round_ in range(10):  # a race: several rounds, each on a new file (it failed within 4 before)
            path = tmp_path / f"logs-{round_}.db"
            errors = [e for e in pool.starmap(_open_once, [(path, start)] * 6) if e]
            assert errors == [], (round_, errors)
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
                assert conn.execute("SELECT count(*) FROM log_records").fetchone() == (0,)
