"""What every command shares: settings from ``--config``, error mapping, JSON output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import orjson
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn

from dataflywheel.errors import ConfigError, DependencyMissingError, FlywheelError
from dataflywheel.settings import Settings, load_settings

console = Console(stderr=True)
"""Human-readable output (tables, progress) goes to stderr; stdout carries data (JSON, JSONL)."""
out = Console()

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class CliState:
    config: Path | None = None
    _settings: Settings | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings


@contextmanager
def serve_extra(command: str) -> Iterator[None]:
    """Around the imports of a command that serves HTTP: without fastapi or uvicorn, a
    :class:`DependencyMissingError` naming the missing module and the extra to install."""
    try:
        yield
    except ImportError as exc:
        raise DependencyMissingError(
            f"{command} needs fastapi and uvicorn ({exc.name} is missing): pip install 'data-flywheel[serve]'"
        ) from exc


def progress_bar(label: str, *columns: ProgressColumn) -> Progress:
    """A command's progress bar on the console (gone once done): ``label`` (a :class:`TextColumn` format), the
    bar, then ``columns``."""
    return Progress(TextColumn(label), BarColumn(), *columns, console=console, transient=True)


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


@contextmanager
def handle_errors() -> Iterator[None]:
    """Show a FlywheelError as one clear message and exit non-zero (2 for settings, 1 otherwise)."""
    try:
        yield
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except FlywheelError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")
    sys.stdout.flush()


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`handle_errors` for command functions."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with handle_errors():
            return fn(*args, **kwargs)

    return wrapper


def parse_assignments(values: list[str] | None, option: str) -> dict[str, object]:
    """``KEY=VALUE`` options into a dict; values are YAML scalars (``10``, ``0.1``, ``true``, ``[a, b]``)."""
    out: dict[str, object] = {}
    for value in values or []:
        key, sep, raw = value.partition("=")
        key = key.strip()
        if not sep or not key:
            raise typer.BadParameter(f"{value!r}: expected KEY=VALUE, e.g. eval_size=20", param_hint=option)
        try:
            parsed = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            parsed = raw
        target = out
        *parents, leaf = key.split(".")  # lora.adapter_dim=8 -> {"lora": {"adapter_dim": 8}}
        for parent in parents:
            nested = target.setdefault(parent, {})
            if not isinstance(nested, dict):
                raise typer.BadParameter(f"{key!r}: {parent} is given a value and sub-keys", param_hint=option)
            target = nested
        target[leaf] = parsed
    return out
