"""The commented YAML of every setting (``config/flywheel.yaml``), written from the settings themselves.

Each key's comment is its field's description and its value the field's default, so the shipped file cannot
drift from :class:`~dataflywheel.settings.Settings`: ``flywheel config --template > config/flywheel.yaml``
writes it, and a test checks that the shipped file is exactly this text. A description or a default is
changed in :mod:`dataflywheel.settings`, nowhere else.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import to_jsonable_python

from dataflywheel.settings import Settings

__all__ = ["HEADER", "settings_template"]

WIDTH = 118
"""Longest comment line (the project's line length is 120)."""

HEADER = """\
data-flywheel settings: every key at its default value, under its description. Written by `flywheel config
--template` from src/dataflywheel/settings/: change a description or a default there, not here.
Every key can be overridden by an environment variable FLYWHEEL_<SECTION>__<KEY>, e.g.
FLYWHEEL_DATA_SPLIT__EVAL_SIZE=50 or FLYWHEEL_LOG_STORE__BACKEND=postgres.
A bad value stops every command at start with the setting's name and the reason."""


def settings_template(model: type[BaseModel] = Settings) -> str:
    """The YAML text: :data:`HEADER`, then each top-level key (a section: its keys indented) under its comment."""
    lines = [f"# {line}" for line in HEADER.splitlines()]
    for name, field in model.model_fields.items():
        lines.append("")
        lines += _field_lines(name, field, 0)
    return "\n".join(lines) + "\n"


def _field_lines(name: str, field: FieldInfo, indent: int) -> list[str]:
    pad = " " * indent
    lines = _comment(field.description or "", indent)
    section = _section(field.annotation)
    if section is not None:
        lines.append(f"{pad}{name}:")
        for sub_name, sub in section.model_fields.items():
            lines += _field_lines(sub_name, sub, indent + 2)
    else:
        lines.append(f"{pad}{name}: {_scalar(field.get_default(call_default_factory=True))}")
    return lines


def _section(annotation: Any) -> type[BaseModel] | None:
    """The settings section a field holds (a model, not a list of them), or None for a value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _comment(text: str, indent: int) -> list[str]:
    """``text`` as comment lines: reStructuredText's double backticks dropped, paragraphs kept, lines wrapped."""
    prefix = " " * indent + "# "
    lines: list[str] = []
    for paragraph in textwrap.dedent(text.replace("``", "")).strip().split("\n\n"):
        lines += textwrap.wrap(" ".join(paragraph.split()), WIDTH - len(prefix), break_on_hyphens=False)
    return [prefix + line for line in lines]


def _scalar(value: Any) -> str:
    """A default as YAML: null, true, 42, 0.1, plain or quoted strings, lists in flow style."""
    text = yaml.safe_dump(to_jsonable_python(value), default_flow_style=True, width=10**6, sort_keys=False)
    return text.strip().removesuffix("...").strip()
