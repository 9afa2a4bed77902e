"""Open the log store the settings name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dataflywheel.errors import ConfigError, DependencyMissingError
from dataflywheel.logstore.base import LogStore
from dataflywheel.settings import LogStoreBackend, Settings, secret_from_env


def open_log_store(settings: Settings) -> LogStore:
    """The configured backend, connected, redacting what it stores as ``privacy.redact`` says. Raises
    StoreError when it cannot be reached."""
    from dataflywheel.privacy.config import build_redactor

    redactor = build_redactor(settings)
    store = _open_backend(settings)
    store.redactor = redactor
    return store


@contextmanager
def _installed(backend: LogStoreBackend, client: str, *, extra: str) -> Iterator[None]:
    """Around the import of a backend's module: without its ``client`` library, a DependencyMissingError naming
    the ``extra`` to install."""
    try:
        yield
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DependencyMissingError(
            f"log_store.backend is '{backend.value}' but {client} is not installed: "
            f"pip install 'data-flywheel[{extra}]'"
        ) from exc


def _open_backend(settings: Settings) -> LogStore:
    cfg = settings.log_store
    if cfg.backend is LogStoreBackend.SQLITE:
        from dataflywheel.logstore.sqlite import SQLiteLogStore

        return SQLiteLogStore(settings.sqlite_log_path, batch_size=cfg.batch_size)
    if cfg.backend is LogStoreBackend.POSTGRES:
        with _installed(cfg.backend, "psycopg", extra="postgres"):
            from dataflywheel.logstore.postgres import PostgresLogStore
        assert cfg.postgres_url is not None  # checked by LogStoreSettings
        return PostgresLogStore(cfg.postgres_url, table=cfg.postgres_table, batch_size=cfg.batch_size)
    if cfg.backend is LogStoreBackend.ELASTICSEARCH:
        with _installed(cfg.backend, "the client", extra="es"):
            from dataflywheel.logstore.elasticsearch import ElasticsearchLogStore
        api_key = secret_from_env(cfg.elasticsearch_api_key_env, setting="log_store.elasticsearch_api_key_env")
        return ElasticsearchLogStore(
            cfg.elasticsearch_url, index=cfg.elasticsearch_index, api_key=api_key, batch_size=cfg.batch_size
        )
    raise ConfigError(f"log_store.backend: unknown backend {cfg.backend!r}")  # pragma: no cover
