"""The synthetic traffic generator: determinism, shape, knobs, and the ``synth`` command."""

from __future__ import annotations

import io
import random
import string
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from dataflywheel.cli.synth import synth
from dataflywheel.errors import ConfigError, RecordError
from dataflywheel.records.model import parse_record
from dataflywheel.synth import catalog as cat
from dataflywheel.synth.generator import (
    _GENERIC_DETAILS,
    MALFORMED_KINDS,
    NO_TOOL,
    TOOL_NAMES,
    SynthConfig,
    _Slots,
    generate,
    system_prompt,
    tools,
    write_jsonl,
)

N = 2000
KNOBS = SynthConfig(
    records=N,
    seed=7,
    duplicate_rate=0.1,
    text_answer_rate=0.08,
    malformed_rate=0.1,
    multi_turn_rate=0.2,
    string_arguments_rate=0.3,
)
REQUIRED = {t["function"]["name"]: t["function"]["parameters"]["required"] for t in tools()}


def _write(config: SynthConfig) -> bytes:
    buf = io.BytesIO()
    write_jsonl(config, buf)
    return buf.getvalue()


def _calls(record: dict[str, Any]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = record["response"]["choices"][0]["message"].get("tool_calls") or []
    return calls


def _user_text(record: dict[str, Any]) -> str:
    text: str = record["request"]["messages"][-1]["content"]
    return text


@pytest.fixture(scope="module")
def plain() -> list[dict[str, Any]]:
    return list(generate(SynthConfig(records=N, seed=3)))


@pytest.fixture(scope="module")
def knobbed() -> tuple[list[bytes], Any]:
    buf = io.BytesIO()
    summary = write_jsonl(KNOBS, buf)
    return buf.getvalue().splitlines(), summary


# ------------------------------------------------------------------------------------------- determinism


def test_same_config_gives_the_same_bytes() -> None:
    config = SynthConfig(
        records=300,
        seed=11,
        duplicate_rate=0.2,
        text_answer_rate=0.1,
        malformed_rate=0.1,
        multi_turn_rate=0.3,
        string_arguments_rate=0.5,
    )
    first = _write(config)
    assert first == _write(config)
    assert first != _write(SynthConfig(records=300, seed=12, duplicate_rate=0.2, malformed_rate=0.1))
    assert _write(SynthConfig(records=50, seed=1)) != _write(SynthConfig(records=50, seed=2))


def test_writer_valid_lines_are_the_generated_records() -> None:
    config = SynthConfig(records=200, seed=5, malformed_rate=0.2, multi_turn_rate=0.3, string_arguments_rate=0.3)
    valid = []
    for line in _write(config).splitlines():
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if "request" in obj:
            valid.append(line)
    assert valid == [orjson.dumps(r) for r in generate(config)]
    # malformed lines come from their own random stream: the valid records do not depend on them
    assert (
        valid == _write(SynthConfig(records=200, seed=5, multi_turn_rate=0.3, string_arguments_rate=0.3)).splitlines()
    )


def test_generated_records_are_independent() -> None:
    first, second = list(generate(SynthConfig(records=2, duplicate_rate=1.0)))
    first["request"]["tools"].clear()
    first["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]["x"] = "y"
    assert len(second["request"]["tools"]) == 4
    assert "x" not in second["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]


# ------------------------------------------------------------------------------------------------ shape


def test_public_constants() -> None:
    assert [t["function"]["name"] for t in tools()] == list(TOOL_NAMES)
    assert len(TOOL_NAMES) == 4
    assert REQUIRED[cat.SMALL_TALK] == ["message"]
    assert REQUIRED[cat.PRODUCT] == ["query"]
    assert REQUIRED[cat.ORDERS] == ["query", "user_id"]
    assert REQUIRED[cat.RETURNS] == ["query", "user_id"]
    prompt = system_prompt("4165")
    assert prompt.endswith("The current user id is : 4165\n")
    assert 1000 <= len(prompt) <= 1500
    tools()[0]["function"]["name"] = "changed"
    assert tools()[0]["function"]["name"] == TOOL_NAMES[0]


def test_every_record_parses_and_calls_one_tool(plain: list[dict[str, Any]]) -> None:
    assert len(plain) == N
    last_ts = 0
    for record in plain:
        parsed = parse_record(record)
        assert parsed.workload_id == "primary_assistant" and parsed.client_id == "northwind-1"
        ts = record["timestamp"]
        assert isinstance(ts, int) and 1_746_000_000 <= ts < 1_746_000_000 + 30 * 86400 and ts >= last_ts
        last_ts = ts
        request, response = record["request"], record["response"]
        assert request["model"] == "meta/llama-3.3-70b-instruct"
        assert [m["role"] for m in request["messages"]] == ["system", "user"]
        assert request["tools"] == tools()
        uid = request["messages"][0]["content"].rsplit(": ", 1)[1].strip()
        assert request["messages"][0]["content"] == system_prompt(uid)
        assert response["object"] == "chat.completion" and response["created"] == ts
        choice = response["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        message = choice["message"]
        assert message["role"] == "assistant" and message["content"] == ""
        calls = _calls(record)
        assert len(calls) == 1
        call = calls[0]
        assert call["type"] == "function" and call["id"].startswith("call_")
        name, args = call["function"]["name"], call["function"]["arguments"]
        assert name in TOOL_NAMES
        assert isinstance(args, dict)
        assert sorted(args) == sorted(REQUIRED[name])
        assert all(isinstance(v, str) and v for v in args.values())
        if "user_id" in args:
            assert args["user_id"] == uid
        if "query" in args:
            assert args["query"] != _user_text(record)
        usage = response["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_class_proportions_follow_the_weights(plain: list[dict[str, Any]]) -> None:
    counts = Counter(_calls(r)[0]["function"]["name"] for r in plain)
    for name, weight in cat.DEFAULT_CLASS_WEIGHTS.items():
        assert abs(counts[name] / N - weight) < 0.03, (name, counts[name])
    custom = SynthConfig(records=N, seed=4, class_weights={cat.ORDERS: 3, cat.RETURNS: 1})
    counts = Counter(_calls(r)[0]["function"]["name"] for r in generate(custom))
    assert set(counts) == {cat.ORDERS, cat.RETURNS}
    assert abs(counts[cat.ORDERS] / N - 0.75) < 0.03


def test_user_texts_are_varied(plain: list[dict[str, Any]]) -> None:
    texts = [_user_text(r) for r in plain]
    assert (len(texts) - len(set(texts))) / len(texts) < 0.02
    words = sum(len(t.split()) for t in texts) / len(texts)
    assert 22 <= words <= 40
    assert any(len(t.split()) <= 8 for t in texts) and any(len(t.split()) >= 45 for t in texts)
    small_talk = [r for r in plain if _calls(r)[0]["function"]["name"] == cat.SMALL_TALK]
    echoed = sum(_calls(r)[0]["function"]["arguments"]["message"] == _user_text(r) for r in small_talk)
    assert 0.3 < echoed / len(small_talk) < 0.7
    uids = Counter(r["request"]["messages"][0]["content"].rsplit(": ", 1)[1].strip() for r in plain)
    assert uids.most_common(1)[0][0] == "4165" and uids["4165"] / N > 0.95 and len(uids) > 1
    assert all(t.isascii() for t in texts)


def test_record_size_is_like_the_sample(plain: list[dict[str, Any]]) -> None:
    sizes = [len(orjson.dumps(r)) for r in plain]
    assert 4000 <= sum(sizes) / len(sizes) <= 6000
    assert min(sizes) >= 3500 and max(sizes) <= 7000


# ------------------------------------------------------------------------------------------------ knobs


def test_knobs_give_about_the_requested_shares(knobbed: tuple[list[bytes], Any]) -> None:
    lines, summary = knobbed
    records: list[dict[str, Any]] = []
    malformed = 0
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            malformed += 1
            continue
        if not isinstance(obj, dict) or "request" not in obj:
            malformed += 1
            with pytest.raises(RecordError):
                parse_record(obj)
            continue
        records.append(obj)
    assert len(records) == N == summary.records
    assert malformed == summary.malformed_total and len(lines) == summary.lines
    assert abs(malformed / len(lines) - KNOBS.malformed_rate) < 0.025
    assert all(summary.malformed[k] > 0 for k in MALFORMED_KINDS)

    text_answers = [r for r in records if not _calls(r)]
    assert len(text_answers) == summary.text_answers == summary.per_class[NO_TOOL]
    assert abs(len(text_answers) / N - KNOBS.text_answer_rate) < 0.025
    for r in text_answers:
        choice = r["response"]["choices"][0]
        assert choice["finish_reason"] == "stop" and choice["message"]["content"]

    string_args = [r for r in records if _calls(r) and isinstance(_calls(r)[0]["function"]["arguments"], str)]
    assert len(string_args) == summary.string_arguments
    assert abs(len(string_args) / (N - len(text_answers)) - KNOBS.string_arguments_rate) < 0.035
    for r in string_args:
        raw = _calls(r)[0]["function"]["arguments"]
        parsed = parse_record(orjson.loads(orjson.dumps(r)))  # parse_record normalizes nested dicts in place
        args = parsed.response["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        assert args == orjson.loads(raw) and sorted(args) == sorted(REQUIRED[_calls(r)[0]["function"]["name"]])

    multi = [r for r in records if len(r["request"]["messages"]) > 2]
    assert len(multi) == summary.multi_turn
    assert abs(len(multi) / N - KNOBS.multi_turn_rate) < 0.035
    for r in multi:
        system, user, assistant, tool, new_user = r["request"]["messages"]
        assert [m["role"] for m in (system, user, assistant, tool, new_user)] == [
            "system",
            "user",
            "assistant",
            "tool",
            "user",
        ]
        call = assistant["tool_calls"][0]
        assert isinstance(call["function"]["arguments"], str)
        assert call["function"]["name"] in TOOL_NAMES
        assert sorted(orjson.loads(call["function"]["arguments"])) == sorted(REQUIRED[call["function"]["name"]])
        assert tool["tool_call_id"] == call["id"] and tool["content"]
        parse_record(r)

    assert abs(summary.duplicates / N - KNOBS.duplicate_rate) < 0.025
    texts = Counter(_user_text(r) for r in records)
    repeated = sum(n - 1 for n in texts.values())
    assert repeated >= summary.duplicates * 0.95
    assert summary.bytes_written == sum(len(line) + 1 for line in lines)
    assert sum(summary.per_class.values()) == N


def test_duplicates_repeat_an_earlier_exchange_at_a_new_time() -> None:
    records = list(generate(SynthConfig(records=400, seed=2, duplicate_rate=0.3)))
    first_seen: dict[str, dict[str, Any]] = {}
    repeats = 0
    for r in records:
        text = _user_text(r)
        if text in first_seen:
            repeats += 1
            earlier = first_seen[text]
            assert r["timestamp"] >= earlier["timestamp"]
            assert r["response"]["id"] != earlier["response"]["id"]
        else:
            first_seen[text] = r
    assert 0.2 < repeats / len(records) < 0.4


def test_malformed_lines_never_parse_as_records() -> None:
    lines = _write(SynthConfig(records=300, seed=9, malformed_rate=0.5)).splitlines()
    bad = 0
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            assert line.isascii()
            continue
        if "request" not in obj:
            bad += 1
            with pytest.raises(RecordError):
                parse_record(obj)
        else:
            parse_record(obj)
    assert abs(bad / len(lines) - 0.5) < 0.06


@pytest.mark.parametrize(
    "kwargs",
    [
        {"records": 0},
        {"duplicate_rate": -0.1},
        {"text_answer_rate": 1.5},
        {"malformed_rate": 1.0},
        {"user_ids": ()},
        {"class_weights": {"NoSuchTool": 1.0}},
        {"class_weights": {cat.ORDERS: 0.0}},
        {"workload_id": ""},
    ],
)
def test_invalid_config_is_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SynthConfig(**kwargs)


def test_write_to_path_and_speed(tmp_path: Path) -> None:
    path = tmp_path / "traffic.jsonl"
    summary = write_jsonl(SynthConfig(records=500, seed=1, malformed_rate=0.05), path)
    assert path.stat().st_size == summary.bytes_written
    assert len(path.read_bytes().splitlines()) == summary.lines


def test_every_template_fills() -> None:
    """A typo in a catalog slot name would only fail on the records that draw it: check them all."""
    templates: list[str] = [*cat.POLICY_QUERIES, *cat.BACKSTORIES, *cat.TANGENTS, *cat.ORDER_REFS]
    templates += [*cat.PRODUCT_ANSWERS, *_GENERIC_DETAILS, *cat.SMALL_TALK_DETAILS]
    for intent in (*cat.PRODUCT_INTENTS, *cat.ORDER_INTENTS, *cat.RETURN_INTENTS):
        templates += [*intent.cores, *intent.shorts, *intent.queries, *intent.details]
    for topic in cat.SMALL_TALK_TOPICS:
        templates += [*topic.cores, *topic.shorts]
    sized = next(p for p in cat.PRODUCTS if cat.KINDS[p[1]].sizes)
    for product in (cat.PRODUCTS[0], sized):
        slots = _Slots(random.Random(0), product)
        slots["policy_q"] = "shipping"
        for template in templates:
            text = template.format_map(slots)
            assert "{" not in text and text.isascii()
    allowed = set(string.printable)
    for text in (cat.SYSTEM_PROMPT, orjson.dumps(cat.TOOLS).decode()):
        assert set(text) <= allowed


# -------------------------------------------------------------------------------------------------- CLI


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app."""

    app.command("synth")(synth)
    return app


def test_cli_writes_a_file_and_prints_json(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    result = CliRunner().invoke(
        _app(),
        [
            "synth",
            "--records",
            "40",
            "--seed",
            "3",
            "--out",
            str(out),
            "--json",
            "--malformed-rate",
            "0.1",
            "--workload-id",
            "wl",
            "--client-id",
            "cl",
            "--text-answer-rate",
            "0.1",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    assert summary["records"] == 40 and summary["out"] == str(out)
    lines = out.read_bytes().splitlines()
    assert len(lines) == summary["lines"]
    expected = _write(
        SynthConfig(records=40, seed=3, malformed_rate=0.1, workload_id="wl", client_id="cl", text_answer_rate=0.1)
    )
    assert out.read_bytes() == expected


def test_cli_writes_stdout_with_the_table_on_stderr() -> None:
    result = CliRunner().invoke(_app(), ["synth", "--records", "25", "--multi-turn-rate", "0.5"])
    assert result.exit_code == 0, result.output
    lines = result.stdout_bytes.splitlines()
    assert len(lines) == 25
    assert all(parse_record(orjson.loads(line)) for line in lines)
    assert "records (valid)" in result.stderr and "records (valid)" not in result.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--records", "0"], "--records"),
        (["--duplicate-rate", "1.5"], "--duplicate-rate"),
        (["--malformed-rate", "1"], "--malformed-rate"),
        (["--string-arguments-rate", "-0.2"], "--string-arguments-rate"),
    ],
)
def test_cli_rejects_bad_options(args: list[str], option: str) -> None:
    result = CliRunner().invoke(_app(), ["synth", *args])
    assert result.exit_code == 2
    assert option in result.output
