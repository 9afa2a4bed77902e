"""Pseudonyms: a stand-in value of the same kind and shape for each value found, the same one for the same
value everywhere in a record, and deterministic given a secret salt (HMAC-SHA256 of the kind and value).

The stand-ins come from ranges that are nobody's, so they can never be a real person's data and are not
flagged again: mail at ``example.com``/``.net``/``.org``, IPv4 in 198.18.0.0/15 and IPv6 in 2001:db8::/32,
card numbers and IBANs whose check digits are deliberately wrong, North American phone numbers in the
fictional 555-01xx block. Names and street names are drawn from word lists. Formats are kept: a phone written
``(415) 555-2671`` gets the same parentheses and hyphen, a card its groups.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable

from dataflywheel.privacy.addresses import split_address
from dataflywheel.privacy.checksums import iban_remainder, luhn_check_digit
from dataflywheel.privacy.kinds import PiiKind
from dataflywheel.privacy.names import name_tokens

SURROGATE_FIRST_NAMES = [
    "Avery",
    "Blake",
    "Casey",
    "Dana",
    "Elliot",
    "Frankie",
    "Hayden",
    "Jamie",
    "Jesse",
    "Kendall",
    "Lane",
    "Logan",
    "Marlow",
    "Noel",
    "Oakley",
    "Parker",
    "Quinn",
    "Reese",
    "Rowan",
    "Sawyer",
    "Shay",
    "Sidney",
    "Tatum",
    "Teagan",
    "Toby",
    "Wren",
    "Alma",
    "Bruna",
    "Celine",
    "Delia",
    "Edith",
    "Fiona",
    "Greta",
    "Hedda",
    "Ilse",
    "Jolene",
    "Katya",
    "Lorna",
    "Mirela",
    "Nadine",
    "Odile",
    "Petra",
    "Rhea",
    "Selma",
    "Thea",
    "Una",
    "Vera",
    "Wilma",
    "Yara",
    "Zelda",
    "Anton",
    "Bastian",
    "Cyril",
    "Dorian",
    "Emil",
    "Florian",
    "Gideon",
    "Hector",
    "Ivo",
    "Jasper",
    "Kasimir",
    "Leopold",
    "Milo",
    "Nestor",
    "Otto",
    "Quentin",
    "Rufus",
    "Silas",
    "Tobias",
    "Ulric",
    "Vito",
    "Xaver",
]
SURROGATE_SURNAMES = [
    "Abernathy",
    "Ashdown",
    "Bellweather",
    "Blackwood",
    "Calloway",
    "Carrow",
    "Dunmore",
    "Ellery",
    "Fairbanks",
    "Farrow",
    "Gainsford",
    "Galloway",
    "Hadley",
    "Hartwell",
    "Ingram",
    "Jessop",
    "Kettering",
    "Langley",
    "Lockwood",
    "Marchetti",
    "Merriweather",
    "Norwood",
    "Oakhurst",
    "Pemberton",
    "Quill",
    "Radcliffe",
    "Rainsford",
    "Sheridan",
    "Stanhope",
    "Thornbury",
    "Tolliver",
    "Underhill",
    "Vance",
    "Wakefield",
    "Whitlock",
    "Yardley",
    "Ashby",
    "Bramwell",
    "Cresswell",
    "Daventry",
    "Eastwood",
    "Fenwick",
    "Garrick",
    "Holloway",
    "Irvine",
    "Jolliffe",
    "Kingsley",
    "Lindqvist",
    "Mortimer",
    "Northcott",
    "Ormsby",
    "Prescott",
    "Ravenscroft",
    "Sterling",
    "Trevelyan",
    "Upton",
    "Vickery",
    "Winslow",
]
SURROGATE_STREETS = [
    "Alder",
    "Birchwood",
    "Brookside",
    "Cedar",
    "Chestnut",
    "Clearwater",
    "Cobblestone",
    "Dogwood",
    "Elm",
    "Fairview",
    "Foxglove",
    "Hawthorn",
    "Hazel",
    "Highland",
    "Hollow",
    "Ivy",
    "Juniper",
    "Lakeview",
    "Larch",
    "Linden",
    "Maple",
    "Meadow",
    "Millbrook",
    "Oak",
    "Orchard",
    "Pine",
    "Quarry",
    "Redwood",
    "Rosewood",
    "Sparrow",
    "Spruce",
    "Stonebridge",
    "Sycamore",
    "Thistle",
    "Willow",
    "Windmill",
]
_MAIL_DOMAINS = ("example.com", "example.net", "example.org")

_Maker = Callable[[int], str]


class Pseudonymizer:
    """Stand-ins for one record: the same value gets the same stand-in, two values never share one."""

    def __init__(self, salt: bytes) -> None:
        self._salt = salt
        self._given: dict[tuple[PiiKind, str], str] = {}
        self._used: set[tuple[PiiKind, str]] = set()
        self._makers: dict[PiiKind, Callable[[str], str]] = {
            PiiKind.EMAIL: self._email,
            PiiKind.PHONE: self._phone,
            PiiKind.CARD_NUMBER: self._card,
            PiiKind.IBAN: self._iban,
            PiiKind.IP_ADDRESS: self._ip,
            PiiKind.PERSON: self._person,
            PiiKind.ADDRESS: self._address,
        }
        """The stand-in maker of each kind (built once: ``surrogate`` runs for every PII match)."""

    def _hash(self, kind: str, key: str, attempt: int) -> int:
        msg = f"{kind}\x00{key}\x00{attempt}".encode()
        return int.from_bytes(hmac.new(self._salt, msg, hashlib.sha256).digest()[:16], "big")

    def _draw(self, kind: PiiKind, key: str, make: _Maker, original: str) -> str:
        """The stand-in of ``key``: ``make(hash)`` until one is new in this record and unlike the original."""
        got = self._given.get((kind, key))
        if got is not None:
            return got
        for attempt in range(64):
            candidate = make(self._hash(kind.value, key, attempt))
            if candidate.lower() != original.lower() and (kind, candidate.lower()) not in self._used:
                break
        self._given[(kind, key)] = candidate
        self._used.add((kind, candidate.lower()))
        return candidate

    def surrogate(self, kind: PiiKind, value: str) -> str:
        """The stand-in for ``value`` (as written) of ``kind``, in the same format."""
        return self._makers[kind](value)

    # ---- per kind -------------------------------------------------------------------------------------
    def _email(self, value: str) -> str:
        def make(h: int) -> str:
            first = SURROGATE_FIRST_NAMES[h % len(SURROGATE_FIRST_NAMES)].lower()
            last = SURROGATE_SURNAMES[(h >> 8) % len(SURROGATE_SURNAMES)].lower()
            return f"{first}.{last}{(h >> 16) % 100}@{_MAIL_DOMAINS[(h >> 24) % 3]}"

        return self._draw(PiiKind.EMAIL, value.lower(), make, value)

    def _phone(self, value: str) -> str:
        digits = "".join(ch for ch in value if ch.isdigit())
        national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        if len(national) == 10 and (len(digits) == 10 or value.lstrip().startswith(("+1", "1"))):

            def make(h: int) -> str:  # NANP: a real area code, the fictional 555-0100..0199 block
                return f"{200 + h % 800}5550{100 + (h >> 16) % 100}"[:10]

        else:
            keep = "0" if national.startswith("0") else ""

            def make(h: int) -> str:
                body = str(h).zfill(40)[-(len(national) - len(keep)) :]
                body = ("123456789"[h % 9] + body[1:]) if not keep else body
                return keep + body

        new = self._draw(PiiKind.PHONE, national, make, national)
        return _fill_digits(value, new, align="end")

    def _card(self, value: str) -> str:
        digits = "".join(ch for ch in value if ch.isdigit())

        def make(h: int) -> str:
            payload = digits[0] + str(h).zfill(40)[-(len(digits) - 2) :]
            wrong = (luhn_check_digit(payload) + 1 + h % 9) % 10  # never the valid check digit
            return payload + str(wrong)

        return _fill_digits(value, self._draw(PiiKind.CARD_NUMBER, digits, make, digits), align="start")

    def _iban(self, value: str) -> str:
        compact = value.replace(" ", "").upper()

        def make(h: int) -> str:
            pool = str(h) * 3
            body = "".join(
                pool[i] if ch.isdigit() else chr(65 + int(pool[i : i + 2]) % 26) for i, ch in enumerate(compact[4:])
            )
            check = f"{10 + h % 90}"
            candidate = compact[:2] + check + body
            if iban_remainder(candidate) == 1:  # a valid checksum would make it look real: move it off
                candidate = compact[:2] + f"{(int(check) + 1) % 90 + 10}" + body
            return candidate

        new = self._draw(PiiKind.IBAN, compact, make, compact)
        chars = iter(new)
        return "".join(next(chars) if ch != " " else ch for ch in value)

    def _ip(self, value: str) -> str:
        addr = ipaddress.ip_address(value)
        key = str(addr)
        if addr.version == 4:

            def make(h: int) -> str:
                return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address("198.18.0.0")) + h % (1 << 17)))

        else:

            def make(h: int) -> str:
                return str(ipaddress.IPv6Address((0x20010DB8 << 96) | (h & ((1 << 96) - 1))))

        return self._draw(PiiKind.IP_ADDRESS, key, make, key)

    def _person(self, value: str) -> str:
        out = value
        for i, tok in enumerate(name_tokens(value)):
            pool = SURROGATE_FIRST_NAMES if i == 0 and len(name_tokens(value)) >= 1 else SURROGATE_SURNAMES
            known = self._given.get((PiiKind.PERSON, tok))
            new = known or self._draw(PiiKind.PERSON, tok, _pick(pool), tok)
            out = re.sub(rf"(?<![\w'-]){re.escape(tok)}(?![\w'-])", new, out, count=1)
        return out

    def _address(self, value: str) -> str:
        parts = split_address(value)
        if parts is None:
            return re.sub(r"\d+", lambda m: self._digits(m.group()), value)
        street_key = re.sub(r"\s+", " ", parts["street"].strip().lower())
        street = self._draw(PiiKind.ADDRESS, "street:" + street_key, _pick(SURROGATE_STREETS), parts["street"])
        number = self._digits(parts["number"])
        rest = re.sub(r"\d+", lambda m: self._digits(m.group()), parts["rest"])
        if parts["street"].islower():
            street = street.lower()
        return f"{number} {parts['direction']}{street} {parts['suffix']}{rest}"

    def _digits(self, run: str) -> str:
        """A digit run (house number, ZIP, unit) -> another of the same length; letters kept ("221B")."""
        digits = "".join(ch for ch in run if ch.isdigit())

        def make(h: int) -> str:
            body = str(h).zfill(40)[-len(digits) :]
            return ("123456789"[h % 9] + body[1:]) if digits[:1] != "0" else body

        new = self._draw(PiiKind.ADDRESS, "digits:" + digits, make, digits)
        return _fill_digits(run, new, align="start")


def _pick(pool: list[str]) -> _Maker:
    return lambda h: pool[h % len(pool)]


def _fill_digits(template: str, digits: str, align: str) -> str:
    """``template`` with its digits replaced by ``digits``; extra leading template digits (a country code) are
    kept when aligning at the end."""
    count = sum(ch.isdigit() for ch in template)
    skip = count - len(digits) if align == "end" else 0
    it = iter(digits)
    out = []
    for ch in template:
        if ch.isdigit():
            if skip > 0:
                skip -= 1
                out.append(ch)
            else:
                out.append(next(it, ch))
        else:
            out.append(ch)
    return "".join(out)
