"""The redactor the settings ask for (``privacy``), and the secret salt of pseudonyms."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from dataflywheel.errors import ConfigError
from dataflywheel.privacy.redact import Redactor
from dataflywheel.settings import RedactMode, Settings

SALT_FILE = "privacy-salt"


def home_salt(home: Path) -> bytes:
    """The salt kept in ``<home>/privacy-salt``, created (random, owner-only) on first use."""
    path = home / SALT_FILE
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"privacy.salt_env is not set and {path} cannot be created: {exc}") from exc
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    try:
        salt = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"privacy.salt_env is not set and {path} cannot be read: {exc}") from exc
    if not salt:
        raise ConfigError(f"{path} is empty: delete it to get a new salt, or set privacy.salt_env")
    return salt.encode()


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
