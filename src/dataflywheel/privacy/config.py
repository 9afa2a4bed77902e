"""The redactor the settings ask for (``privacy``), and the secret salt of pseudonyms."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path

from dataflywheel.errors import ConfigError
from dataflywheel.privacy.redact import Redactor
from dataflywheel.settings import RedactMode, Settings

SALT_FILE = "privacy-salt"


def home_salt(home: Path) -> bytes:
    """The salt kept in ``<home>/privacy-salt``, created (random, owner-only) on first use.

    Created whole or not at all: the salt is written to a temporary file that is then linked under the final
    name (which fails if another process got there first, and then its salt is read), so processes opening a
    new home at once all get the same salt and none reads a half-written file."""
    path = home / SALT_FILE
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create_salt(path)
        salt = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"privacy.salt_env is not set and {path} cannot be created or read: {exc}") from exc
    if not salt:
        raise ConfigError(f"{path} is empty: delete it to get a new salt, or set privacy.salt_env")
    return salt.encode()


def _create_salt(path: Path) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs is the salt
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def pseudonym_salt(settings: Settings) -> bytes:
    """The secret of pseudonyms: the variable ``privacy.salt_env`` names, else the home's salt file."""
    env = settings.privacy.salt_env
    if env:
        value = os.environ.get(env, "")
        if not value:  # checked when the settings load; the environment may have changed since
            raise ConfigError(f"privacy.salt_env: environment variable {env} is not set")
        return value.encode()
    return home_salt(settings.home)


def build_redactor(settings: Settings) -> Redactor | None:
    """The redactor of ``privacy.redact``, or None when it is ``off``."""
    cfg = settings.privacy
    if cfg.redact is RedactMode.OFF:
        return None
    salt = pseudonym_salt(settings) if cfg.redact is RedactMode.PSEUDONYMIZE else b""
    return Redactor(cfg.redact.value, salt=salt, kinds=frozenset(cfg.kinds))
