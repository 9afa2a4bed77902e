"""A JSONL file read line by line: each non-blank line decoded as JSON, with its number (from 1)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

__all__ = ["read_json_lines"]


def read_json_lines(
    path: Path,
    bad_line: Callable[[int, str], Exception],
    *,
    loads: Callable[[bytes], object] = orjson.loads,
) -> Iterator[tuple[int, object]]:
    """``(line number, value)`` for each non-blank line of ``path``; a line ``loads`` cannot decode raises
    ``bad_line(line number, the parser's message)``."""
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = loads(line)
            except json.JSONDecodeError as exc:  # orjson's JSONDecodeError is a subclass
                raise bad_line(number, exc.msg) from None
            yield number, value
