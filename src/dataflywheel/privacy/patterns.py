"""Recognizers of the pattern kinds: emails, phone numbers, card numbers, IBANs and IP addresses.

Each is a pure function ``text -> list[Finding]``. A regular expression proposes candidates and a check
decides: card numbers must pass Luhn, IBANs their country's length and mod-97 checksum, IP addresses must
parse, phone numbers need a phone-like shape (``+`` and a country code, an area code in parentheses, the
3-3-4 or trunk-0 groupings) or a phone word before them ("call me at", "mobile"). Values in ranges reserved
for examples and documentation (``example.com`` mail, 192.0.2.0/24, 198.18.0.0/15, 2001:db8::/32) are nobody's:
they are not flagged, which also lets pseudonyms be drawn from them without being redacted again.
"""

from __future__ import annotations

import ipaddress
import re

from dataflywheel.privacy.checksums import IBAN_LENGTHS, iban_valid, luhn_valid
from dataflywheel.privacy.kinds import Finding, PiiKind

# ---- email ------------------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])"
)
RESERVED_MAIL_DOMAINS = ("example.com", "example.net", "example.org")
RESERVED_MAIL_TLDS = (".example", ".test", ".invalid", ".localhost")


def reserved_email(address: str) -> bool:
    domain = address.rsplit("@", 1)[-1].lower()
    return domain in RESERVED_MAIL_DOMAINS or domain.endswith(RESERVED_MAIL_TLDS)


def find_emails(text: str) -> list[Finding]:
    if "@" not in text:
        return []
    return [
        Finding(m.start(), m.end(), PiiKind.EMAIL, m.group())
        for m in _EMAIL.finditer(text)
        if not reserved_email(m.group())
    ]


# ---- card numbers -----------------------------------------------------------------------------------
# 13-19 digits, optionally in groups split by one space or hyphen; never a piece of a longer digit run.
_CARD = re.compile(r"(?<![\w-])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![ -]?\d)(?![\w-])")
_CARD_GROUPINGS = frozenset({(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3)})


def card_shape_ok(raw: str) -> bool:
    """A plausible card layout: no separators, or the groupings card issuers print (4-4-4-4, 4-6-5, ...),
    with one separator kind throughout. Issuer prefixes 2-6 (Mastercard 2-series, Amex, Visa, MC, Discover)."""
    if raw[0] not in "23456":
        return False
    seps = {ch for ch in raw if not ch.isdigit()}
    if not seps:
        return True
    if len(seps) > 1:
        return False
    groups = tuple(len(g) for g in raw.split(seps.pop()))
    return groups in _CARD_GROUPINGS


def find_cards(text: str) -> list[Finding]:
    out = []
    for m in _CARD.finditer(text):
        raw = m.group()
        digits = raw.replace(" ", "").replace("-", "")
        if card_shape_ok(raw) and luhn_valid(digits):
            out.append(Finding(m.start(), m.end(), PiiKind.CARD_NUMBER, raw))
    return out


# ---- IBAN -------------------------------------------------------------------------------------------
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){10,30}")


def find_ibans(text: str) -> list[Finding]:
    out = []
    for m in _IBAN.finditer(text):
        raw = m.group()
        want = IBAN_LENGTHS.get(raw[:2].upper())
        if want is None:
            continue
        # Take exactly the country's length of characters (a trailing word may have been swallowed).
        count, end = 0, 0
        for i, ch in enumerate(raw):
            if ch != " ":
                count += 1
                if count == want:
                    end = i + 1
                    break
        if not end:
            continue
        candidate = raw[:end]
        after = text[m.start() + end : m.start() + end + 1]
        if after.isalnum():
            continue
        if iban_valid(candidate.replace(" ", "").upper()):
            out.append(Finding(m.start(), m.start() + end, PiiKind.IBAN, candidate))
    return out


# ---- IP addresses -----------------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?<!\bv)(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?\d)(?![\w])")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:)(?:[0-9A-Fa-f]{0,4}:){1,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_VERSION_BEFORE = re.compile(r"(?:version|ver\.?|firmware|release|v)\s*$", re.IGNORECASE)
RESERVED_NETWORKS = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),
    ipaddress.ip_network("2001:db8::/32"),
)


def reserved_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address.version == net.version and address in net for net in RESERVED_NETWORKS)


def find_ips(text: str) -> list[Finding]:
    out = []
    if "." in text:
        for m in _IPV4.finditer(text):
            if _VERSION_BEFORE.search(text[max(0, m.start() - 12) : m.start()]):
                continue
            if not reserved_ip(ipaddress.IPv4Address(m.group())):
                out.append(Finding(m.start(), m.end(), PiiKind.IP_ADDRESS, m.group()))
    if ":" in text:
        for m in _IPV6.finditer(text):
            raw = m.group()
            if sum(ch.isalnum() for ch in raw) < 4:
                continue
            try:
                addr = ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            if not reserved_ip(addr):
                out.append(Finding(m.start(), m.end(), PiiKind.IP_ADDRESS, raw))
    return out


# ---- phone numbers ----------------------------------------------------------------------------------
_PHONE = re.compile(
    r"(?<![\w+#/.-])(?:\+|00)?(?:\(\d{1,4}\)|\d{1,5})(?:(?:[ .-]|\)\s?)?\(?\d{1,5}\)?){1,6}(?![\w/-]|[.,]\d)"
)
_NANP = re.compile(r"^(?:\+?1[ .-]?)?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}$")
_TRUNK = re.compile(r"^0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4}$")
_DATE_LIKE = re.compile(r"^(?:\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})$")
_PHONE_WORDS = re.compile(
    r"(?:phone|cell|mobile|tel(?:ephone)?|call(?:ed|ing)?|text(?:ed|ing)?|sms|whats ?app|fax|reach(?: me)?|contact|"
    r"my number|number is|landline|dial|ring)\b[^.!?\n\d]{0,25}$",
    re.IGNORECASE,
)
_PHONE_WORDS_AFTER = re.compile(r"^[^.!?\n\d]{0,12}\b(?:cell|mobile|phone|landline|whats ?app)\b", re.IGNORECASE)
_NOT_PHONE_WORDS = re.compile(
    r"(?:order|tracking|invoice|ref(?:erence)?|sku|item|model|part|account|acct|po|case|ticket|serial|"
    r"confirmation|zip|postcode|postal code|gift card|card|member(?:ship)?|loyalty|rma|return|id)"
    r"\b[^.!?\n\d]{0,12}(?:#\s*)?$",
    re.IGNORECASE,
)


def _phone_digits(raw: str) -> str:
    return "".join(ch for ch in raw if ch.isdigit())


def phone_shape(raw: str) -> bool:
    """A shape only phone numbers have: international (+ or 00 then 8-15 digits), North American with
    separators, or a national number with its trunk 0 and groups."""
    digits = _phone_digits(raw)
    if raw.startswith("+") or (raw.startswith("00") and not raw.startswith("000")):
        return (8 <= len(digits) <= 15 and any(not ch.isdigit() for ch in raw)) or 10 <= len(digits) <= 13
    if _NANP.match(raw):
        return True
    return bool(_TRUNK.match(raw)) and len(digits) in (10, 11)


def find_phones(text: str) -> list[Finding]:
    out = []
    for m in _PHONE.finditer(text):
        raw = m.group().rstrip(" .-")
        if raw.count("(") != raw.count(")"):
            raw = raw.lstrip("(") if raw.startswith("(") and raw.count("(") > raw.count(")") else raw
            if raw.count("(") != raw.count(")"):
                continue
        digits = _phone_digits(raw)
        if not 7 <= len(digits) <= 15 or _DATE_LIKE.match(raw):
            continue
        before = text[max(0, m.start() - 40) : m.start()]
        if phone_shape(raw):
            strong = raw.startswith(("+", "00", "(")) or _NANP.match(raw) is not None
            if strong or not _NOT_PHONE_WORDS.search(before):
                out.append(Finding(m.start(), m.start() + len(raw), PiiKind.PHONE, raw))
        elif (
            (_PHONE_WORDS.search(before) or _PHONE_WORDS_AFTER.match(text[m.start() + len(raw) :]))
            and not _NOT_PHONE_WORDS.search(before)
            and len(digits) >= 8
        ):
            out.append(Finding(m.start(), m.start() + len(raw), PiiKind.PHONE, raw))
    return out
