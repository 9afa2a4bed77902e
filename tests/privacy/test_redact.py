"""Redacting a record: mask vs pseudonymize, one stand-in per value across the record, structure kept."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflywheel.privacy.checksums import iban_valid, luhn_valid
from dataflywheel.privacy.detect import detect
from dataflywheel.privacy.redact import Redactor
from dataflywheel.records.model import parse_record

SALT = b"a-test-salt-of-32-characters-ok!"
EMAIL, PHONE, NAME = "tadhg.p@fastmail.fm", "(415) 867-2671", "Tadhg Penhaligon"
CARD, IBAN, IP, ADDRESS = "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00", "81.2.69.142", "742 Evergreen Terrace"
ORIGINALS = (EMAIL, PHONE, NAME, "Tadhg", "Penhaligon", CARD, IBAN, IP, ADDRESS, "867-2671")


def record() -> dict[str, Any]:
    """A multi-turn record: PII in an earlier turn, the answer text, and tool-call arguments (a JSON string)."""
    args = {"email": EMAIL, "phone": "4158672671", "customer_name": NAME, "query": "refund", "amount": 12}
    return {
        "timestamp": 1_750_000_000,
        "workload_id": "desk",
        "client_id": "c1",
        "request": {
            "model": "teacher",
            "messages": [
                {"role": "system", "content": "You are the assistant of Northwind Outfitters."},
                {"role": "user", "content": f"Hi, my name is {NAME}, call me at {PHONE} or mail {EMAIL}."},
                {"role": "assistant", "content": f"Thanks Tadhg, is {EMAIL} right?"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": f"Yes. Card {CARD}, IBAN {IBAN}, from {IP}, at {ADDRESS}."}],
                },
            ],
            "tools": [{"type": "function", "function": {"name": "Refund", "parameters": {"type": "object"}}}],
        },
        "response": {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {
                        "role": "assistant",
                        "content": "Penhaligon, one moment.",
                        "tool_calls": [
                            {
                                "id": "call_7",
                                "type": "function",
                                "function": {"name": "Refund", "arguments": json.dumps(args)},
                            }
                        ],
                    },
                }
            ]
        },
    }


def _texts(rec: dict[str, Any]) -> str:
    return orjson.dumps(rec).decode()


def _args(rec: dict[str, Any]) -> dict[str, Any]:
    raw = rec["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(raw, str), "arguments sent as a JSON string stay a JSON string"
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def test_mask_replaces_every_value_with_its_typed_placeholder() -> None:
    out = Redactor("mask").redact_dict(record())
    text = _texts(out)
    assert not [v for v in ORIGINALS if v in text]
    user = out["request"]["messages"][1]["content"]
    assert user == "Hi, my name is <PERSON>, call me at <PHONE> or mail <EMAIL>."
    assert out["request"]["messages"][3]["content"][0]["text"] == (
        "Yes. Card <CARD_NUMBER>, IBAN <IBAN>, from <IP_ADDRESS>, at <ADDRESS>."
    )
    assert _args(out) == {
        "email": "<EMAIL>",
        "phone": "<PHONE>",
        "customer_name": "<PERSON>",
        "query": "refund",
        "amount": 12,
    }


def test_pseudonymize_uses_one_stand_in_per_value_across_turns_answer_and_arguments() -> None:
    out = Redactor("pseudonymize", salt=SALT).redact_dict(record())
    assert not [v for v in ORIGINALS if v in _texts(out)]
    user = out["request"]["messages"][1]["content"]
    m = re.fullmatch(r"Hi, my name is (\w+) (\w+), call me at (\(\d{3}\) \d{3}-\d{4}) or mail (\S+)\.", user)
    assert m, user
    first, last, phone, email = m.groups()
    args = _args(out)
    assert args["email"] == email and email.endswith(("@example.com", "@example.net", "@example.org"))
    assert args["customer_name"] == f"{first} {last}"
    assert args["phone"] == re.sub(r"\D", "", phone), "the same digits, each in its own format"
    assert out["request"]["messages"][2]["content"] == f"Thanks {first}, is {email} right?"
    assert out["response"]["choices"][0]["message"]["content"] == f"{last}, one moment."
    assert (args["query"], args["amount"]) == ("refund", 12)


def test_stand_ins_keep_format_and_cannot_be_real() -> None:
    out = Redactor("pseudonymize", salt=SALT).redact_dict(record())
    text = out["request"]["messages"][3]["content"][0]["text"]
    m = re.fullmatch(r"Yes\. Card ([\d ]+), IBAN ([A-Z0-9 ]+), from ([\d.]+), at (.+)\.", text)
    assert m, text
    card, iban, ip, address = m.groups()
    assert re.fullmatch(r"4\d{3} \d{4} \d{4} \d{4}", card) and not luhn_valid(card.replace(" ", ""))
    assert len(iban) == len(IBAN) and iban.startswith("DE") and not iban_valid(iban.replace(" ", ""))
    assert ip.startswith("198.1")  # 198.18.0.0/15, reserved for benchmarks
    assert re.fullmatch(r"\d{3} [A-Z][a-z]+ Terrace", address) and address != ADDRESS
    assert detect(text.replace(address, "")) == [], "stand-ins are not flagged again"


def test_pseudonyms_are_deterministic_given_the_salt() -> None:
    a = Redactor("pseudonymize", salt=SALT).redact_dict(record())
    b = Redactor("pseudonymize", salt=SALT).redact_dict(record())
    c = Redactor("pseudonymize", salt=b"another-salt-of-enough-characters").redact_dict(record())
    assert a == b
    assert _args(a)["email"] != _args(c)["email"]


def test_structure_roles_ids_tools_are_untouched_and_the_input_is_not_changed() -> None:
    original = record()
    before = copy.deepcopy(original)
    out = Redactor("pseudonymize", salt=SALT).redact_dict(original)
    assert original == before, "the input record is not changed in place"
    assert out["request"]["tools"] is original["request"]["tools"]
    assert [m["role"] for m in out["request"]["messages"]] == ["system", "user", "assistant", "user"]
    assert out["request"]["messages"][0] is original["request"]["messages"][0], "nothing to redact: same object"
    call = out["response"]["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["type"], call["function"]["name"]) == ("call_7", "function", "Refund")
    assert set(_args(out)) == set(_args(original))
    assert {k: out[k] for k in ("timestamp", "workload_id", "client_id")} == {
        k: original[k] for k in ("timestamp", "workload_id", "client_id")
    }


def test_normalized_records_keep_object_arguments_and_redaction_is_idempotent() -> None:
    rec = parse_record(record())  # arguments normalized to an object, as stores receive them
    redactor = Redactor("pseudonymize", salt=SALT)
    once = redactor.redact_record(rec)
    args = once.response["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert isinstance(args, dict) and args["amount"] == 12
    twice = redactor.redact_record(once)
    # mail, card, IBAN and IP stand-ins come from ranges that are nobody's: redacting again leaves them
    for value in (args["email"],):
        assert value in orjson.dumps(twice.to_dict()).decode()
    assert parse_record(twice.to_dict()).id  # still a valid record


_pii = st.sampled_from([EMAIL, PHONE, NAME, CARD, IBAN, IP, ADDRESS, "order NW123456", "Juniper 0", "4165"])
_text = st.lists(st.one_of(_pii, st.text(max_size=12)), max_size=5).map(" ".join)
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["email", "phone", "q", "customer_name"]), inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(content=_text, args=_json, as_string=st.booleans())
def test_any_record_keeps_its_shape_and_json_arguments_stay_json(content: str, args: Any, as_string: bool) -> None:
    rec = record()
    call = rec["response"]["choices"][0]["message"]["tool_calls"][0]
    call["function"]["arguments"] = json.dumps(args) if as_string else args
    rec["request"]["messages"][1]["content"] = content
    for mode in ("mask", "pseudonymize"):
        out = Redactor(mode, salt=SALT).redact_dict(rec)
        new_args = out["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        if as_string:
            assert isinstance(new_args, str)
            new_args = json.loads(new_args)
        assert _shape(new_args) == _shape(args)
        assert len(out["request"]["messages"]) == 4


def _shape(value: Any) -> Any:
    """Containers, keys, booleans and nulls; strings and numbers as their type (a value may change)."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    if isinstance(value, str | int) and not isinstance(value, bool):
        return type(value)
    return value
