"""Settings of what leaves a job: the MLflow export and the privacy of logged records."""

from __future__ import annotations

import os
from enum import StrEnum

from pydantic import Field, ValidationInfo, field_validator

from dataflywheel.privacy.kinds import PiiKind
from dataflywheel.settings.base import (
    Section,
    installed,
)


class MlflowSettings(Section):
    """Export of every completed job to MLflow: one run per job (params: overrides, candidates, dataset build id
    and file hashes; metrics: every metric with its 95% interval, cost and latency; artifacts: the manifest, eval
    summaries, result.json, adapters, the report), a nested run per candidate. A failed export (a server down)
    is recorded in the job's result (result.mlflow.error), never fails the job; ``flywheel export-mlflow
    JOB_ID`` exports it again."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (http(s)://server, sqlite:///path/mlflow.db, postgresql://...); "
        "null: no export. Needs the mlflow extra: pip install 'data-flywheel[mlflow]'.",
    )
    experiment: str = Field(
        "data-flywheel", min_length=1, description="Experiment the runs go to (created if missing)."
    )
    artifact_location: str | None = Field(
        None,
        description="Where a new experiment keeps its artifacts (a folder or URI); null: the server's default, "
        "or <home>/mlflow-artifacts with a local sqlite:/file: store.",
    )
    log_adapters: bool = Field(True, description="Upload each customized candidate's LoRA adapter folder.")
    http_timeout_s: int = Field(30, ge=1, le=3600, description="Seconds one request to a tracking server may take.")
    http_retries: int = Field(
        2, ge=0, le=10, description="Retries of a failed request to a tracking server (with backoff)."
    )

    @field_validator("tracking_uri")
    @classmethod
    def _client_installed(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.strip():
            return None
        if uri is not None and not installed("mlflow"):
            raise ValueError(
                "is set but the mlflow package is not installed: pip install 'data-flywheel[mlflow]' "
                "(or leave mlflow.tracking_uri unset)"
            )
        return uri


class RedactMode(StrEnum):
    OFF = "off"
    """Records are stored as they come."""
    MASK = "mask"
    """Each value found becomes a typed placeholder: ``<EMAIL>``, ``<PHONE>``, ``<PERSON>``, ..."""
    PSEUDONYMIZE = "pseudonymize"
    """Each value found becomes a stand-in of its kind, the same one everywhere in the record (salted)."""


MIN_SALT_CHARS = 16


class PrivacySettings(Section):
    """PII redaction before storage: applied to every record on its way into the log store, whatever the
    path (``flywheel logs load``, ``POST /api/logs``, curated write-backs) and the backend, and to
    ``flywheel datasets build --from-file``."""

    redact: RedactMode = Field(
        RedactMode.PSEUDONYMIZE,
        description="off (records are stored as they come) | mask (each value found becomes a typed placeholder: "
        "<EMAIL>, <PHONE>, <CARD_NUMBER>, <IBAN>, <IP_ADDRESS>, <PERSON>, <ADDRESS>) | pseudonymize (each value "
        "becomes a stand-in of its kind and format, the same one everywhere in the record: user turns, answers, "
        "tool-call arguments, so a model still learns to copy it into a call).",
    )
    salt_env: str | None = Field(
        None,
        description="Env var holding the secret salt of pseudonyms (at least 16 characters); null: a random salt "
        "kept in <home>/privacy-salt. Set it on every machine that loads into a shared store.",
    )
    kinds: list[PiiKind] = Field(
        default_factory=lambda: list(PiiKind),
        min_length=1,
        description="What is redacted: email, phone, card_number, iban, ip_address, person, address.",
    )

    @field_validator("salt_env")
    @classmethod
    def _salt_present(cls, env: str | None, info: ValidationInfo) -> str | None:
        if env is not None and not env.strip():
            return None
        if env is not None and info.data.get("redact") is RedactMode.PSEUDONYMIZE:
            value = os.environ.get(env)
            if not value:
                raise ValueError(f"environment variable {env} is not set (it holds the salt of pseudonyms)")
            if len(value) < MIN_SALT_CHARS:
                raise ValueError(f"the salt in {env} has {len(value)} characters; use at least {MIN_SALT_CHARS}")
        return env
