"""Every way into the log store redacts before the store sees a record: ``flywheel logs load``, ``POST
/api/logs`` (SQLite and PostgreSQL), and ``flywheel datasets build --from-file``; settings checked at start."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from dataflywheel.api import create_api
from dataflywheel.cli.main import app
from dataflywheel.errors import ConfigError
from dataflywheel.logstore import LogQuery, open_log_store
from dataflywheel.privacy.config import home_salt
from dataflywheel.settings import Settings, load_settings
from dataflywheel.synth.pii_corpus import pii_log_records

WORKLOAD = {"workload_id": "account_desk", "client_id": "northwind-pii"}


def _records(n: int = 12) -> list[dict[str, Any]]:
    return pii_log_records(n, seed=11)


def _originals(records: list[dict[str, Any]]) -> set[str]:
    """The e-mails, phones and names the records were written with."""
    out: set[str] = set()
    for rec in records:
        args = json.loads(rec["response"]["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"])
        out.update((args["email"], args["phone"], args["customer_name"]))
    return out


def _stored_text(settings: Settings) -> str:
    with open_log_store(settings) as store:
        return "\n".join(raw.decode() for _, raw in store.iter_raw(LogQuery(**WORKLOAD)))


def _leaks(text: str, originals: set[str]) -> list[str]:
    return sorted(v for v in originals if v in text or v.lower() in text.lower())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Keyword settings of a SQLite log store, or of a fresh PostgreSQL table."""
    if request.param == "sqlite":
        return {"home": tmp_path / "home"}
    return {
        "home": tmp_path / "home",
        "log_store": {
            "backend": "postgres",
            "postgres_url": request.getfixturevalue("postgres_url"),
            "postgres_table": request.getfixturevalue("pg_table"),
        },
    }


def test_cli_logs_load_stores_pseudonyms_by_default(tmp_path: Path) -> None:
    records = _records()
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    result = CliRunner().invoke(app, ["logs", "load", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["loaded"] == len(records)
    text = _stored_text(load_settings())
    assert _leaks(text, _originals(records)) == []
    assert text.count("@example.") >= len(records) * 2, "e-mails replaced by stand-ins, not dropped"
    # loading the same file again stores nothing new: pseudonyms are deterministic
    again = CliRunner().invoke(app, ["logs", "load", str(path), "--json"])
    assert json.loads(again.output)["duplicates"] == len(records)


def test_cli_logs_load_masks_when_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLYWHEEL_PRIVACY__REDACT", "mask")
    records = _records(3)
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert CliRunner().invoke(app, ["logs", "load", str(path)]).exit_code == 0
    text = _stored_text(load_settings())
    assert _leaks(text, _originals(records)) == []
    assert text.count("<EMAIL>") == 6 and text.count("<PERSON>") == 6 and text.count("<PHONE>") == 6


def test_api_post_logs_redacts_in_every_store(store_settings: dict[str, Any]) -> None:
    settings = load_settings(**store_settings)
    records = _records()
    with TestClient(create_api(settings, start_jobs=False, recover=False)) as client:
        response = client.post("/api/logs", json=records)
    assert response.status_code == 200, response.text
    assert response.json()["loaded"] == len(records)
    text = _stored_text(settings)
    assert _leaks(text, _originals(records)) == []
    stored = [orjson.loads(line) for line in text.splitlines()]
    for rec in stored:  # structure intact: the call still names its tool, arguments an object with every key
        call = rec["response"]["choices"][0]["message"]["tool_calls"][0]
        assert call["function"]["name"] == "LookupCustomer"
        assert set(call["function"]["arguments"]) == {"email", "phone", "customer_name", "query"}


def test_off_stores_records_as_they_come(store_settings: dict[str, Any]) -> None:
    settings = load_settings(**store_settings, privacy={"redact": "off"})
    records = _records(3)
    with TestClient(create_api(settings, start_jobs=False, recover=False)) as client:
        assert client.post("/api/logs", json=records).status_code == 200
    assert _leaks(_stored_text(settings), _originals(records)) == sorted(_originals(records))


def test_the_salt_variable_decides_the_pseudonyms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = _records(2)
    texts = []
    for i, salt in enumerate(["first-salt-0123456789", "first-salt-0123456789", "other-salt-0123456789"]):
        monkeypatch.setenv("PII_SALT", salt)
        settings = load_settings(home=tmp_path / f"h{i}", privacy={"salt_env": "PII_SALT"})
        with TestClient(create_api(settings, start_jobs=False, recover=False)) as client:
            assert client.post("/api/logs", json=records).status_code == 200
        texts.append(_stored_text(settings))
    assert texts[0] == texts[1] != texts[2]
    assert not (tmp_path / "h0" / "privacy-salt").exists(), "no salt file when the variable gives it"


def test_without_a_salt_variable_a_private_salt_file_is_made_once(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    with open_log_store(settings):
        pass
    salt_file = tmp_path / "home" / "privacy-salt"
    first = salt_file.read_text()
    assert len(first.strip()) == 64 and salt_file.stat().st_mode & 0o077 == 0
    with open_log_store(settings):
        pass
    assert salt_file.read_text() == first


def _salt_of(home: Path, start: Any) -> str:
    start.wait()
    try:
        return home_salt(home).decode()
    except ConfigError as exc:
        return f"error: {exc}"


def test_processes_opening_a_new_home_at_once_get_one_salt(tmp_path: Path) -> None:
    """Found by the schedulers' race test: a second process read the salt file before the first had written
    it ("is empty"). Six processes, ten new homes: one salt per home, no error, no temporary file left."""
    context = multiprocessing.get_context("fork")
    with context.Manager() as manager, context.Pool(6) as pool:
        start = manager.Barrier(6)
        for round_ in range(10):
            home = tmp_path / f"home-{round_}"
            salts = set(pool.starmap(_salt_of, [(home, start)] * 6))
            assert len(salts) == 1 and len(next(iter(salts))) == 64, salts
            assert [p.name for p in home.iterdir()] == ["privacy-salt"]
            assert (home / "privacy-salt").stat().st_mode & 0o077 == 0


def test_bad_privacy_settings_stop_at_start_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"privacy\.redact"):
        load_settings(privacy={"redact": "hash"})
    with pytest.raises(ConfigError, match=r"privacy\.salt_env: .*MISSING_SALT is not set"):
        load_settings(privacy={"redact": "pseudonymize", "salt_env": "MISSING_SALT"})
    monkeypatch.setenv("SHORT_SALT", "abc")
    with pytest.raises(ConfigError, match=r"privacy\.salt_env: .*at least 16"):
        load_settings(privacy={"salt_env": "SHORT_SALT"})
    with pytest.raises(ConfigError, match=r"privacy\.kinds"):
        load_settings(privacy={"kinds": ["email", "shoe_size"]})
    monkeypatch.setenv("FLYWHEEL_PRIVACY__REDACT", "maybe")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code != 0 and "privacy.redact" in result.output


def test_only_the_configured_kinds_are_redacted(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", privacy={"redact": "mask", "kinds": ["email"]})
    records = _records(2)
    with TestClient(create_api(settings, start_jobs=False, recover=False)) as client:
        assert client.post("/api/logs", json=records).status_code == 200
    text = _stored_text(settings)
    assert "<EMAIL>" in text and "<PHONE>" not in text and "<PERSON>" not in text


def test_datasets_built_from_a_file_are_redacted_too(tmp_path: Path) -> None:
    records = _records(30)
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "datasets",
            "build",
            *("--workload-id", "account_desk", "--client-id", "northwind-pii"),
            *("--from-file", str(path), "--eval-size", "5", "--min-total-records", "10", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    build = Path(json.loads(result.output)["path"])
    written = "".join((build / name).read_text() for name in ("eval.jsonl", "train.jsonl", "val.jsonl", "icl.jsonl"))
    assert "LookupCustomer" in written
    assert _leaks(written, _originals(records)) == []
