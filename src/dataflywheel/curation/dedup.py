"""Duplicate detection keys."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson

from dataflywheel.records.chat import message_text
from dataflywheel.settings import DedupMode


def dedup_key(record: Mapping[str, object], mode: DedupMode) -> bytes | None:
    """A 16-byte key equal for records that count as duplicates, or None for a record never deduplicated.

    ``user_turns`` (default, the blueprint's rule): the texts of the user messages, in order; a record
    with no user text is never a duplicate. ``full``: system prompt, tools and every message.
    """
    request = record.get("request")
    request = request if isinstance(request, Mapping) else {}
    messages = request.get("messages") or []
    if mode is DedupMode.USER_TURNS:
        texts = [
            message_text(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") == "user" and m.get("content")
        ]
        if not texts:
            return None
        payload = orjson.dumps(texts)
    else:
        payload = orjson.dumps([messages, request.get("tools")], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(payload, digest_size=16).digest()
