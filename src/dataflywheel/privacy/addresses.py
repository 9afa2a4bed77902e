"""Street addresses: a house number, a street name and a street suffix, with what usually follows.

``742 Evergreen Terrace``, ``1600 N. Main St., Apt 4B, Springfield, IL 62704``, ``221B Baker Street, London
NW1 6XE``, ``P.O. Box 1234``. The street name is capitalized words (or an ordinal: "5th Ave"); an address all in
lower case is taken only with the common suffixes ("12 elm street", "9 oak ave"). A city is taken with the
address only when a state code, ZIP or UK postcode follows it, so "... Main St, Thanks" stops at "St".
What this cannot find: addresses without a house number or suffix ("the blue house by the church"),
and most non-English forms ("Hauptstrasse 5").
"""

from __future__ import annotations

import re

from dataflywheel.privacy.kinds import Finding, PiiKind

SUFFIXES = (
    "Street|St|Avenue|Ave|Av|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter|Parkway|"
    "Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Loop|Row|Crescent|Cres|Close|Grove|Gardens|Alley|Pike|Plaza|"
    "Mews|Walk|Hill|Heights|Point|Ridge|Run|Pass|Crossing|Xing|Commons|Green|Esplanade|Quay|Wharf"
)
_LOWER_SUFFIXES = "street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|terrace|parkway|pkwy"
_DIRECTION = r"(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?"
_NUMBER = r"(?<![\w#$.,-])\d{1,6}[A-Za-z]?(?:-\d{1,4})?"
_WORD = r"(?:[A-Z][a-zA-Z'-]*|\d{1,3}(?:st|nd|rd|th))"
_UNIT = r"(?:,?\s*(?:Apt|Apartment|Suite|Ste|Unit|Fl|Floor|Rm|Room|Bldg|Building|#)\.?\s*#?[A-Za-z0-9-]{1,6}\b)?"
_STATE = (
    r"(?:A[KLRZ]|C[AOT]|D[CE]|FL|GA|HI|I[ADLN]|K[SY]|LA|M[ADEINOST]|N[CDEHJMVY]|O[HKR]|PA|RI|S[CD]|T[NX]|UT|V[AT]"
    r"|W[AIVY])"
)
_ZIP = r"\d{5}(?:-\d{4})?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"
_CANADA_POSTCODE = r"[A-Z]\d[A-Z]\s?\d[A-Z]\d"
_CITY = r"[A-Z][a-zA-Z.'-]*(?:\s[A-Z][a-zA-Z.'-]*){0,2}"
_TAIL = (
    rf"(?:,?\s+{_CITY},?\s+(?:{_STATE}(?:\s+{_ZIP})?|{_ZIP}|{_UK_POSTCODE}|[A-Z]{{2}}\s+{_CANADA_POSTCODE})(?![\w])"
    rf"|,?\s+(?:{_UK_POSTCODE}|{_ZIP})(?![\w]))?"
)
_ADDRESS = re.compile(
    rf"{_NUMBER}\s+(?:{_DIRECTION}\s+)?{_WORD}(?:\s+{_WORD}){{0,3}}\s+(?:{SUFFIXES})\b\.?"
    rf"(?:\s+{_DIRECTION}(?![\w]))?{_UNIT}{_TAIL}"
)
_LOWER_ADDRESS = re.compile(
    rf"{_NUMBER}\s+(?:[nsew]\.?\s+)?[a-z]+(?:\s+[a-z]+)?\s+(?:{_LOWER_SUFFIXES})\b\.?{_UNIT}"
    rf"(?:,?\s+[a-z]+(?:\s[a-z]+)?,?\s+(?:[a-z]{{2}}\s+)?{_ZIP}(?![\w]))?"
)
_PO_BOX = re.compile(r"\b(?:P\.?\s?O\.?\s?Box|Post Office Box)\s+\d{1,6}\b", re.IGNORECASE)
# Words that follow quantities, not street names: "2 sleeping bags way before ..." is no address.
_NOT_STREET = re.compile(r"\b(?:days?|weeks?|months?|years?|nights?|hours?|minutes?|items?|pairs?|people|of)\b")


_ABBREVIATED = re.compile(
    r"\b(?:St|Ave|Av|Rd|Blvd|Ln|Dr|Ct|Pl|Ter|Pkwy|Cir|Hwy|Sq|Trl|Cres|Xing|[NSEW]|st|ave|rd|blvd|ln|dr|ct|pkwy)\.$"
)


def _finding(text: str, start: int, end: int) -> Finding:
    """A period after a whole word ends the sentence, not the address ("... Evergreen Terrace.")."""
    if text[end - 1] == "." and not _ABBREVIATED.search(text[start:end]):
        end -= 1
    return Finding(start, end, PiiKind.ADDRESS, text[start:end])


def find_addresses(text: str) -> list[Finding]:
    out = [_finding(text, m.start(), m.end()) for m in _ADDRESS.finditer(text)]
    for m in _LOWER_ADDRESS.finditer(text):
        if not _NOT_STREET.search(m.group()):
            out.append(_finding(text, m.start(), m.end()))
    out.extend(Finding(m.start(), m.end(), PiiKind.ADDRESS, m.group()) for m in _PO_BOX.finditer(text))
    return out


_PARTS = re.compile(
    rf"^(?P<number>\d{{1,6}}[A-Za-z]?(?:-\d{{1,4}})?)\s+(?P<direction>(?:{_DIRECTION}|[nsew]\.?)\s+)?"
    rf"(?P<street>.+?)\s+(?P<suffix>(?:{SUFFIXES}|{_LOWER_SUFFIXES})\b\.?)(?P<rest>.*)$",
    re.DOTALL,
)


def split_address(address: str) -> dict[str, str] | None:
    """``number``, ``direction``, ``street``, ``suffix`` and ``rest`` of a found street address, or None."""
    m = _PARTS.match(address)
    return None if m is None else {k: v or "" for k, v in m.groupdict().items()}
