"""Find PII in texts: every recognizer, overlaps resolved, and values found once found everywhere.

:func:`detect` runs the recognizers over one text. :func:`detect_group` does it for the texts of one record
and then looks for every value found anywhere in the record in all of its texts: a phone number said with
"call me at" in the user's turn is found again as the bare ``"phone": "4155552671"`` of a tool call, and a
name found after "my name is" is found where it stands alone. ``hints`` name the kind of a whole text where
its key says so (a tool argument ``customer_email``, ``first_name``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

from dataflywheel.privacy.addresses import find_addresses
from dataflywheel.privacy.kinds import PRIORITY, Finding, PiiKind
from dataflywheel.privacy.names import find_names, name_tokens
from dataflywheel.privacy.patterns import find_cards, find_emails, find_ibans, find_ips, find_phones

RECOGNIZERS: dict[PiiKind, Callable[[str], list[Finding]]] = {
    PiiKind.EMAIL: find_emails,
    PiiKind.PHONE: find_phones,
    PiiKind.CARD_NUMBER: find_cards,
    PiiKind.IBAN: find_ibans,
    PiiKind.IP_ADDRESS: find_ips,
    PiiKind.PERSON: find_names,
    PiiKind.ADDRESS: find_addresses,
}


def resolve(findings: Sequence[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: where two overlap, the higher-priority kind wins, then the longer."""
    ranked = sorted(findings, key=lambda f: (PRIORITY[f.kind], f.start - f.end, f.start))
    taken: list[Finding] = []
    for f in ranked:
        if all(f.end <= t.start or f.start >= t.end for t in taken):
            taken.append(f)
    return sorted(taken)


@lru_cache(maxsize=4096)
def _detect_cached(text: str, kinds: frozenset[PiiKind]) -> tuple[Finding, ...]:
    found: list[Finding] = []
    for kind, recognize in RECOGNIZERS.items():
        if kind in kinds:
            found.extend(recognize(text))
    return tuple(resolve(found))


ALL_KINDS = frozenset(PiiKind)


def detect(text: str, kinds: frozenset[PiiKind] = ALL_KINDS) -> list[Finding]:
    """The PII in one text, in order, not overlapping. Cached: system prompts repeat across records."""
    if len(text) < 4:
        return []
    return list(_detect_cached(text, kinds))


# ---- hints from keys ------------------------------------------------------------------------------
_KEY_KINDS: tuple[tuple[re.Pattern[str], PiiKind], ...] = (
    (re.compile(r"e-?mail"), PiiKind.EMAIL),
    (re.compile(r"phone|mobile|cell|telephone|^tel$|fax|contact_number|whatsapp"), PiiKind.PHONE),
    (re.compile(r"card_?(?:number|no|num)|^pan$|^cc(?:_number)?$|credit_?card"), PiiKind.CARD_NUMBER),
    (re.compile(r"iban"), PiiKind.IBAN),
    (re.compile(r"(?:^|_)ip(?:_?addr(?:ess)?)?$|remote_addr"), PiiKind.IP_ADDRESS),
    (
        re.compile(
            r"(?:customer|full|first|last|given|family|sur|contact|recipient|cardholder|holder|guest|passenger|"
            r"person|user|account_holder|billing|shipping)_?name|^surname$|^cardholder$|^recipient$"
        ),
        PiiKind.PERSON,
    ),
    (re.compile(r"address(?:_?line_?\d)?$|^street|street_address"), PiiKind.ADDRESS),
)
_NAME_VALUE = re.compile(r"^[A-Za-z][A-Za-z .'-]{0,60}$")
_PHONE_VALUE = re.compile(r"^\+?[\d ().-]{7,22}$")


def key_hint(key: str | None) -> PiiKind | None:
    """The kind a value's key names (``customer_email`` -> email), or None."""
    if not key:
        return None
    k = key.lower().replace("-", "_")
    if k.endswith(("_id", "_type", "_count", "_verified")) or k in ("name", "username", "user_id"):
        return None
    for pattern, kind in _KEY_KINDS:
        if pattern.search(k):
            return kind
    return None


def whole_value(text: str, kind: PiiKind) -> Finding | None:
    """``text`` as one value of ``kind`` (from its key) when it looks like one."""
    value = text.strip()
    start = text.index(value) if value else 0
    ok = False
    if kind is PiiKind.PERSON:
        ok = bool(_NAME_VALUE.match(value)) and any(ch.isalpha() for ch in value) and len(value.split()) <= 5
    elif kind is PiiKind.PHONE:
        ok = bool(_PHONE_VALUE.match(value)) and 7 <= sum(ch.isdigit() for ch in value) <= 15
    elif kind is PiiKind.ADDRESS:
        ok = 4 <= len(value) <= 200 and any(ch.isalpha() for ch in value)
    elif kind is PiiKind.CARD_NUMBER:
        digits = value.replace(" ", "").replace("-", "")
        ok = digits.isdigit() and 12 <= len(digits) <= 19
    elif kind is PiiKind.IP_ADDRESS:
        try:
            ipaddress.ip_address(value)
            ok = True
        except ValueError:
            ok = False
    elif kind in (PiiKind.EMAIL, PiiKind.IBAN):
        ok = False  # their recognizers need no key: what they miss is no email or IBAN
    return Finding(start, start + len(value), kind, value) if ok else None


# ---- the same value elsewhere in a record ---------------------------------------------------------
def _variants(found: Finding) -> list[tuple[str, bool]]:
    """Ways ``found``'s value is written again (and whether case may differ): as found, and for numbers
    without separators ("4158672671" for "(415) 867-2671"); a name's words on their own."""
    value = found.text
    if found.kind in (PiiKind.PHONE, PiiKind.CARD_NUMBER):
        digits = "".join(ch for ch in value if ch.isdigit())
        national = digits[1:] if found.kind is PiiKind.PHONE and len(digits) == 11 and digits[0] == "1" else digits
        return [(value, False), (digits, False), (national, False)]
    if found.kind is PiiKind.IBAN:
        return [(value, True), (value.replace(" ", ""), True)]
    if found.kind is PiiKind.PERSON:
        return [(value, " " in value), *((tok, False) for tok in name_tokens(value) if len(tok) > 2)]
    return [(value, found.kind in (PiiKind.EMAIL, PiiKind.ADDRESS, PiiKind.IP_ADDRESS))]


def _boundary(ch: str) -> bool:
    return not (ch.isalnum() or ch in "_'-@")


def _occurrences(text: str, lowered: str, value: str, fold: bool) -> list[tuple[int, int]]:
    hay, needle = (lowered, value.lower()) if fold else (text, value)
    out = []
    pos = hay.find(needle)
    while pos >= 0:
        end = pos + len(needle)
        before = text[pos - 1] if pos else " "
        after = text[end] if end < len(text) else " "
        if _boundary(before) and _boundary(after) and not (before.isdigit() or after.isdigit()):
            out.append((pos, end))
        pos = hay.find(needle, pos + 1)
    return out


def detect_group(
    texts: Sequence[str], hints: Sequence[PiiKind | None] | None = None, kinds: frozenset[PiiKind] = ALL_KINDS
) -> list[list[Finding]]:
    """Findings for each of the texts of one record (see the module doc)."""
    per_text: list[list[Finding]] = []
    for i, text in enumerate(texts):
        found = detect(text, kinds)
        hint = hints[i] if hints is not None else None
        if hint is not None and hint in kinds and not found:
            whole = whole_value(text, hint)
            if whole is not None:
                found = [whole]
        per_text.append(found)
    values = {(f.kind, f.text) for found in per_text for f in found}
    if not values:
        return per_text
    variants = {
        (kind, variant, fold)
        for kind, value in values
        for variant, fold in _variants(Finding(0, len(value), kind, value))
        if len(variant) >= 3
    }
    out = []
    for text, found in zip(texts, per_text, strict=True):
        lowered = text.lower()
        extra = [
            Finding(start, end, kind, text[start:end])
            for kind, variant, fold in variants
            for start, end in _occurrences(text, lowered, variant, fold)
        ]
        out.append(resolve([*found, *extra]) if extra else found)
    return out
