"""The recognizers: each kind found in the formats people write, and look-alikes left alone."""

from __future__ import annotations

import pytest

from dataflywheel.privacy.detect import detect, detect_group
from dataflywheel.privacy.kinds import PiiKind
from dataflywheel.privacy.redact import Redactor
from dataflywheel.records.model import parse_record
from dataflywheel.synth.generator import SynthConfig, generate

FOUND = [
    (PiiKind.EMAIL, "send it to Jane.Doe+shop@gmail.com please", "Jane.Doe+shop@gmail.com"),
    (PiiKind.EMAIL, "contact: k.okafor@mail.northwindtraders.com", "k.okafor@mail.northwindtraders.com"),
    (PiiKind.PHONE, "call me at (415) 867-2671 tonight", "(415) 867-2671"),
    (PiiKind.PHONE, "my mobile is +44 7700 912345.", "+44 7700 912345"),
    (PiiKind.PHONE, "number: +49 30 12345678", "+49 30 12345678"),
    (PiiKind.PHONE, "I tried calling 9768674299 twice", "9768674299"),
    (PiiKind.PHONE, "07911 123456 is my cell", "07911 123456"),
    (PiiKind.CARD_NUMBER, "charged twice on 4111 1111 1111 1111 for", "4111 1111 1111 1111"),
    (PiiKind.CARD_NUMBER, "amex 3782-822463-10005 declined", "3782-822463-10005"),
    (PiiKind.CARD_NUMBER, "card 5555555555554444", "5555555555554444"),
    (PiiKind.IBAN, "IBAN DE89 3704 0044 0532 0130 00, thanks", "DE89 3704 0044 0532 0130 00"),
    (PiiKind.IBAN, "to GB29NWBK60161331926819 please", "GB29NWBK60161331926819"),
    (PiiKind.IP_ADDRESS, "blocked from 81.2.69.142 since noon", "81.2.69.142"),
    (PiiKind.IP_ADDRESS, "my router says 2a02:8108:1a40::5", "2a02:8108:1a40::5"),
    (PiiKind.PERSON, "Hi, my name is Xochitl Quispe and I need help", "Xochitl Quispe"),
    (PiiKind.PERSON, "Dear Mr. Okonkwo, your order shipped", "Okonkwo"),
    (PiiKind.PERSON, "Sarah Thistlewood ordered the tent", "Sarah Thistlewood"),
    (PiiKind.PERSON, "Thanks for your help!\nAoife Vanterpool", "Aoife Vanterpool"),
    (PiiKind.PERSON, "Hello Anahera, your boots shipped", "Anahera"),
    (
        PiiKind.ADDRESS,
        "ship to 1600 N. Main St., Apt 4B, Springfield, IL 62704 please",
        "1600 N. Main St., Apt 4B, Springfield, IL 62704",
    ),
    (PiiKind.ADDRESS, "I live at 221B Baker Street, London NW1 6XE.", "221B Baker Street, London NW1 6XE"),
    (PiiKind.ADDRESS, "new addr 45 oak ave", "45 oak ave"),
    (PiiKind.ADDRESS, "use P.O. Box 1234 instead", "P.O. Box 1234"),
]


@pytest.mark.parametrize(("kind", "text", "value"), FOUND, ids=[f"{k.value}-{i}" for i, (k, _, _) in enumerate(FOUND)])
def test_each_kind_is_found_with_its_exact_span(kind: PiiKind, text: str, value: str) -> None:
    assert [(f.kind, f.text) for f in detect(text)] == [(kind, value)]


NOT_PII = [
    "Where is order NW482913? And #48213, placed 2024-05-01 at 10:30.",
    "My order number is 1002938475, SKU 4402-118, ORD-2024-55120.",
    "Tracking 1Z999AA10123456784 and 9400 1000 0000 0000 0000 00 both stuck.",
    "Gift card 6006 4911 2345 6780 shows $1,299.99.",  # Luhn-invalid
    "Old reference DE00 3704 0044 0532 0130 00 is closed.",  # wrong IBAN checksum
    "The Juniper 0 sleeping bag, Larkspur 18 daypack and Lumen 900R headlamp, firmware 4.2.0.12, v2.3.1",
    "You are the customer support assistant of Northwind Outfitters. The current user id is : 4165",
    "We're hiking in Jordan and Georgia in June with 2 sleeping bags.",
    "Mail the docs to support@example.com or test@shop.example, from 192.0.2.10 and 2001:db8::1.",
]


@pytest.mark.parametrize("text", NOT_PII)
def test_look_alikes_are_not_flagged(text: str) -> None:
    assert detect(text) == []


def test_a_value_found_once_is_found_wherever_the_record_repeats_it() -> None:
    texts = ["call me at (415) 867-2671, I'm Tadhg Penhaligon", "4158672671", "Penhaligon", "Tadhg"]
    found = detect_group(texts)
    assert [[(f.kind, f.text) for f in fs] for fs in found] == [
        [(PiiKind.PHONE, "(415) 867-2671"), (PiiKind.PERSON, "Tadhg Penhaligon")],
        [(PiiKind.PHONE, "4158672671")],
        [(PiiKind.PERSON, "Penhaligon")],
        [(PiiKind.PERSON, "Tadhg")],
    ]


def test_synthetic_traffic_has_nothing_to_redact() -> None:
    """The demo's traffic (product names, order numbers, user ids) is stored unchanged: nothing in it is PII."""
    redactor = Redactor("pseudonymize", salt=b"s" * 32)
    records = [parse_record(r) for r in generate(SynthConfig(records=300, seed=4, multi_turn_rate=0.2))]
    changed = [r.to_dict() for r in records if redactor.redact_record(r) is not r]
    assert changed == []
