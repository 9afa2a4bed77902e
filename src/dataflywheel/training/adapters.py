"""The adapter registry: trained LoRA adapters under ``<home>/adapters/<name>/``, by stable name.

A name is ``<candidate>-<workload>-<short run id>`` (characters outside ``[A-Za-z0-9._-]`` become ``-``).
An adapter folder holds ``adapter_model.safetensors``, ``adapter_config.json``, the tokenizer it was trained
with, ``training_metrics.json`` and ``flywheel_adapter.json`` (name, base model, candidate, workload, dataset,
run id, created). Registration copies into a hidden temporary folder and renames it, so a reader (the
server, a listing) never sees a half-written adapter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dataflywheel.errors import FlywheelError
from dataflywheel.records.jsonvalue import JsonObject
from dataflywheel.settings import Settings

__all__ = [
    "AdapterInfo",
    "AdapterNotFoundError",
    "adapter_name",
    "adapters_dir",
    "delete_adapter",
    "get_adapter",
    "list_adapters",
    "merge_adapter",
    "register_adapter",
]

INFO_FILE = "flywheel_adapter.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class AdapterNotFoundError(FlywheelError):
    """No registered adapter has that name."""


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    info: JsonObject

    @property
    def base_model(self) -> str | None:
        value = self.info.get("base_model")
        return str(value) if value is not None else None


def adapters_dir(settings: Settings) -> Path:
    return settings.home / "adapters"


def adapter_name(candidate: str, workload_id: str, run_id: str) -> str:
    """``<candidate>-<workload>-<short id>``, safe as a folder name and as a served model name."""
    parts = [_UNSAFE.sub("-", p).strip("-.") or "x" for p in (candidate, workload_id, run_id[:8])]
    return "-".join(parts)


def register_adapter(settings: Settings, name: str, source: Path, info: JsonObject) -> AdapterInfo:
    """Copy the adapter folder ``source`` into the registry as ``name`` (replacing one of that name)."""
    if not (source / "adapter_config.json").is_file():
        raise FlywheelError(f"{source} is not an adapter folder (no adapter_config.json)")
    root = adapters_dir(settings)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    full = {"name": name, "created_at": datetime.now(UTC).isoformat(), **info}
    (tmp / INFO_FILE).write_text(json.dumps(full, indent=2, sort_keys=True))
    target = root / name
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return AdapterInfo(name=name, path=target, info=full)


def _read(path: Path) -> AdapterInfo | None:
    try:
        info = json.loads((path / INFO_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return AdapterInfo(name=path.name, path=path, info=info if isinstance(info, dict) else {})


def list_adapters(settings: Settings) -> list[AdapterInfo]:
    """Registered adapters, newest first."""
    root = adapters_dir(settings)
    if not root.is_dir():
        return []
    found = [a for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") for a in [_read(p)] if a]
    return sorted(found, key=lambda a: str(a.info.get("created_at", "")), reverse=True)


def get_adapter(settings: Settings, name: str) -> AdapterInfo:
    path = adapters_dir(settings) / name
    found = _read(path) if _UNSAFE.sub("", name) == name and path.is_dir() else None
    if found is None:
        raise AdapterNotFoundError(f"no registered adapter named {name!r} under {adapters_dir(settings)}")
    return found


def delete_adapter(settings: Settings, name: str) -> bool:
    """Remove a registered adapter; False when there was none."""
    try:
        found = get_adapter(settings, name)
    except AdapterNotFoundError:
        return False
    shutil.rmtree(found.path)
    return True


def merge_adapter(adapter: AdapterInfo, base_model_dir: str, out: Path) -> Path:
    """Export base model + adapter merged into one plain model folder (for engines without LoRA support)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(base_model_dir)
    merged = PeftModel.from_pretrained(base, str(adapter.path)).merge_and_unload()
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(str(tmp))
    AutoTokenizer.from_pretrained(str(adapter.path)).save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
