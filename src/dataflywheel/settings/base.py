"""What every settings section shares: the section base class, the environment prefix, secrets read from
the environment."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from dataflywheel.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/flywheel.yaml")
ENV_PREFIX = "FLYWHEEL_"


def secret_from_env(env: str | None, *, setting: str, required: bool = True) -> str | None:
    """The secret (an API key) held by the environment variable ``env``, which the setting ``setting`` names.

    None when no variable is named. A named variable that is unset or empty is a :class:`ConfigError` naming
    the setting and the variable, or None when ``required`` is false (the caller says what that means)."""
    if not env:
        return None
    value = os.environ.get(env, "").strip()
    if value:
        return value
    if required:
        raise ConfigError(f"{setting}: environment variable {env} is not set or empty")
    return None


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


_S = TypeVar("_S", bound=Section)


def section_field(cls: type[_S]) -> _S:
    """The field that holds the section ``cls``: its defaults unless given, described by its docstring (the
    text the YAML template's comments and the API's schema show)."""
    return Field(default_factory=cls, description=cls.__doc__)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a ``None`` in sys.modules blocks it)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    return importlib.util.find_spec(module) is not None


def check_token_prices(section: Any) -> None:
    """Per-token prices come in pairs: one without the other would make every cost unknown or wrong."""
    given = (section.price_per_1m_input_tokens is not None, section.price_per_1m_output_tokens is not None)
    if given[0] != given[1]:
        missing = "price_per_1m_output_tokens" if given[0] else "price_per_1m_input_tokens"
        raise ValueError(f"{missing} is required when the other per-token price is set (0 for free)")
