"""What the PII recognizers find: one enum of kinds and the finding (a typed span of a text)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PiiKind(StrEnum):
    """A kind of personal data. The value is the kind's name in settings, findings and benchmarks."""

    EMAIL = "email"
    PHONE = "phone"
    CARD_NUMBER = "card_number"
    IBAN = "iban"
    IP_ADDRESS = "ip_address"
    PERSON = "person"
    ADDRESS = "address"

    @property
    def placeholder(self) -> str:
        """What ``mask`` writes instead of a value of this kind: ``<EMAIL>``, ``<CARD_NUMBER>``, ..."""
        return f"<{self.value.upper()}>"


PRIORITY: dict[PiiKind, int] = {
    PiiKind.EMAIL: 0,
    PiiKind.IBAN: 1,
    PiiKind.CARD_NUMBER: 2,
    PiiKind.IP_ADDRESS: 3,
    PiiKind.ADDRESS: 4,
    PiiKind.PHONE: 5,
    PiiKind.PERSON: 6,
}
"""Which finding wins where two overlap (lower first): checksummed and unambiguous kinds before heuristic ones."""


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """``text[start:end]`` is a value of ``kind``."""

    start: int
    end: int
    kind: PiiKind
    text: str
