"""Open the log store the settings name."""

from __future__ import annotations

import os

from dataflywheel.errors import ConfigError, DependencyMissingError
from dataflywheel.logstore.base import LogStore
from dataflywheel.settings import LogStoreBackend, Settings


def open_log_store(settings: Settings) -> LogStore:
    """The configured backend, connected, redacting what it stores as ``privacy.redact`` says. Raises
    StoreError when it cannot be reached."""
    from dataflywheel.privacy.config import build_redactor

    redactor = build_redactor(settings)
    store = _open_backend(settings)
    store.redactor = redactor
    return store


def _open_backend(settings: Settings) -> LogStore:
    cfg = settings.log_store
    if cfg.backend is LogStoreBackend.SQLITE:
        from dataflywheel.logstore.sqlite import SQLiteLogStore

        return SQLiteLogStore(settings.sqlite_log_path, batch_size=cfg.batch_size)
    if cfg.backend is LogStoreBackend.POSTGRES:
        try:
            from dataflywheel.logstore.postgres import PostgresLogStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DependencyMissingError(
                "log_store.backend is 'postgres' but psycopg is not installed: pip install 'data-flywheel[postgres]'"
            ) from exc
        assert cfg.postgres_url is not None  # checked by LogStoreSettings
        return PostgresLogStore(cfg.postgres_url, table=cfg.postgres_table, batch_size=cfg.batch_size)
    if cfg.backend is LogStoreBackend.ELASTICSEARCH:
        try:
            from dataflywheel.logstore.elasticsearch import ElasticsearchLogStore
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DependencyMissingError(
                "log_store.backend is 'elasticsearch' but the client is not installed: pip install 'data-flywheel[es]'"
            ) from exc
        api_key = None
        if cfg.elasticsearch_api_key_env:
            api_key = os.environ.get(cfg.elasticsearch_api_key_env)
            if not api_key:
                raise ConfigError(
                    f"log_store.elasticsearch_api_key_env: environment variable "
                    f"{cfg.elasticsearch_api_key_env} is not set"
                )
        return ElasticsearchLogStore(
            cfg.elasticsearch_url, index=cfg.elasticsearch_index, api_key=api_key, batch_size=cfg.batch_size
        )
    raise ConfigError(f"log_store.backend: unknown backend {cfg.backend!r}")  # pragma: no cover
