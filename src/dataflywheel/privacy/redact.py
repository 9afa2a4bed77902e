"""Redact a log record: find PII in every text a person wrote or read, replace it, keep the structure.

What is read: every message's ``content`` (a string, or the ``text`` of its parts), the arguments of its tool
calls (an object, or a JSON string holding one, whose string values are read with their keys as hints), in
the request, in each response choice, and in the conversation form; and the request's ``user`` field. What is
left alone: roles, ids, tool and function names, ``tools`` (the application's schemas), ``model``, timestamps
and every other field. A replaced value is a typed placeholder (``mask``: ``<EMAIL>``) or a stand-in of the same
kind (``pseudonymize``, :mod:`~dataflywheel.privacy.surrogates`), the same one wherever the value appears in
the record, so an answer that copies the user's e-mail into a tool call still copies it. A number under a
phone or card key (``"phone": 4155552671``) stays a number: the stand-in's digits, or 0 under ``mask``.

Nothing here raises on odd shapes: a field that is not what OpenAI sends is left as it is. Records are never
changed in place; a record with nothing to redact comes back as the same object.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from dataflywheel.privacy.detect import ALL_KINDS, detect_group, key_hint
from dataflywheel.privacy.kinds import Finding, PiiKind
from dataflywheel.privacy.surrogates import Pseudonymizer
from dataflywheel.records.model import LogRecord

TextFn = Callable[[str, str | None], str]
"""Called with each text and the key it sits under (tool arguments), returns its replacement."""


# ---- walking the texts of a record (copy on write) -------------------------------------------------
def _map_args(value: Any, fn: TextFn, key: str | None) -> Any:
    if isinstance(value, str):
        return fn(value, key)
    if isinstance(value, dict):
        new = {k: _map_args(v, fn, k if isinstance(k, str) else None) for k, v in value.items()}
        return value if all(new[k] is value[k] for k in value) else new
    if isinstance(value, list):
        items = [_map_args(v, fn, key) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, int) and not isinstance(value, bool) and key_hint(key) in (PiiKind.PHONE, PiiKind.CARD_NUMBER):
        text = str(value)
        out = fn(text, key)
        if out == text:
            return value
        # A number stays a number (the tool's schema may say integer): a stand-in's digits, or 0 for a mask.
        return int(out) if out.isdigit() else 0
    return value


def _map_arguments(raw: Any, fn: TextFn) -> Any:
    if isinstance(raw, str):
        # The standard json keeps integers of any size exactly (orjson would turn huge ones into floats).
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            return fn(raw, None)
        if not isinstance(parsed, dict | list):
            return fn(raw, None)
        mapped = _map_args(parsed, fn, None)
        return raw if mapped is parsed else json.dumps(mapped, ensure_ascii=False)
    return _map_args(raw, fn, None)


def _with(obj: dict[str, Any], key: str, new: Any) -> dict[str, Any]:
    if new is obj[key]:
        return obj
    out = dict(obj)
    out[key] = new
    return out


def _map_list(items: Any, each: Callable[[Any], Any]) -> Any:
    if not isinstance(items, list):
        return items
    new = [each(item) for item in items]
    return items if all(a is b for a, b in zip(new, items, strict=True)) else new


def _map_part(part: Any, fn: TextFn) -> Any:
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return _with(part, "text", fn(part["text"], None))
    if isinstance(part, str):
        return fn(part, None)
    return part


def _map_call(call: Any, fn: TextFn) -> Any:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = call["function"]
    if "arguments" not in function:
        return call
    return _with(call, "function", _with(function, "arguments", _map_arguments(function["arguments"], fn)))


def _map_message(msg: Any, fn: TextFn) -> Any:
    if not isinstance(msg, dict):
        return msg
    out = msg
    content = msg.get("content")
    if isinstance(content, str):
        out = _with(out, "content", fn(content, None))
    elif isinstance(content, list):
        out = _with(out, "content", _map_list(content, lambda p: _map_part(p, fn)))
    if isinstance(msg.get("tool_calls"), list):
        out = _with(out, "tool_calls", _map_list(msg["tool_calls"], lambda c: _map_call(c, fn)))
    if isinstance(msg.get("function_call"), dict):
        out = _with(out, "function_call", _map_call({"function": msg["function_call"]}, fn)["function"])
    return out


def _map_request(request: Any, fn: TextFn) -> Any:
    if not isinstance(request, dict):
        return request
    out = request
    if isinstance(request.get("messages"), list):
        out = _with(out, "messages", _map_list(request["messages"], lambda m: _map_message(m, fn)))
    if isinstance(request.get("user"), str):
        out = _with(out, "user", fn(request["user"], "user"))
    return out


def _map_response(response: Any, fn: TextFn) -> Any:
    if not isinstance(response, dict) or not isinstance(response.get("choices"), list):
        return response

    def choice(c: Any) -> Any:
        return _with(c, "message", _map_message(c["message"], fn)) if isinstance(c, dict) and "message" in c else c

    return _with(response, "choices", _map_list(response["choices"], choice))


def map_record_texts(record: dict[str, Any], fn: TextFn) -> dict[str, Any]:
    """``record`` with every redactable text replaced by ``fn(text, key)``, in a fixed order; shared
    sub-objects are reused and nothing is changed in place."""
    out = record
    if "request" in record:
        out = _with(out, "request", _map_request(record["request"], fn))
    if "response" in record:
        out = _with(out, "response", _map_response(record["response"], fn))
    if isinstance(record.get("messages"), list):  # the conversation form
        out = _with(out, "messages", _map_list(record["messages"], lambda m: _map_message(m, fn)))
    return out


# ---- the redactor ---------------------------------------------------------------------------------
class Redactor:
    """Replaces the PII of records: ``mask`` with placeholders, ``pseudonymize`` with salted stand-ins."""

    def __init__(self, mode: str, salt: bytes = b"", kinds: frozenset[PiiKind] = ALL_KINDS) -> None:
        if mode not in ("mask", "pseudonymize"):
            raise ValueError(f"redaction mode must be 'mask' or 'pseudonymize', got {mode!r}")
        if mode == "pseudonymize" and not salt:
            raise ValueError("pseudonymize needs a salt")
        self.mode = mode
        self.kinds = kinds
        self._salt = salt

    def findings(self, record: dict[str, Any]) -> list[list[Finding]]:
        """What would be replaced, per text of the record in walking order."""
        texts: list[str] = []
        hints: list[PiiKind | None] = []

        def collect(text: str, key: str | None) -> str:
            texts.append(text)
            hints.append(key_hint(key))
            return text

        map_record_texts(record, collect)
        return detect_group(texts, hints, self.kinds)

    def redact_dict(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record with its PII replaced (the same object when it has none)."""
        per_text = self.findings(record)
        if not any(per_text):
            return record
        pseudonyms = Pseudonymizer(self._salt) if self.mode == "pseudonymize" else None
        replaced = iter([self._replace(text_findings, pseudonyms) for text_findings in per_text])
        originals: Iterator[list[Finding]] = iter(per_text)

        def replace(text: str, key: str | None) -> str:
            findings = next(originals)
            new = next(replaced)
            return text if not findings else _apply(text, findings, new)

        return map_record_texts(record, replace)

    def _replace(self, findings: list[Finding], pseudonyms: Pseudonymizer | None) -> list[str]:
        if pseudonyms is None:
            return [f.kind.placeholder for f in findings]
        return [pseudonyms.surrogate(f.kind, f.text) for f in findings]

    def redact_record(self, record: LogRecord) -> LogRecord:
        """A :class:`LogRecord` with its PII replaced (the same object when it has none)."""
        data = {"request": record.request, "response": record.response}
        new = self.redact_dict(data)
        if new is data:
            return record
        return LogRecord(
            timestamp=record.timestamp,
            workload_id=record.workload_id,
            client_id=record.client_id,
            request=new["request"],
            response=new["response"],
            extra=record.extra,
        )

    def redact_line(self, line: bytes) -> bytes:
        """One JSONL line redacted; a line that is not a JSON object comes back unchanged (for the reader to
        report)."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return line
        if not isinstance(obj, dict):
            return line
        new = self.redact_dict(obj)
        return line if new is obj else orjson.dumps(new) + (b"\n" if line.endswith(b"\n") else b"")


def _apply(text: str, findings: list[Finding], replacements: list[str]) -> str:
    parts: list[str] = []
    pos = 0
    for f, new in zip(findings, replacements, strict=True):
        parts.append(text[pos : f.start])
        parts.append(new)
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)
