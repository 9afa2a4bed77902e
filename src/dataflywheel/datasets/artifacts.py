"""Dataset artifacts: one versioned folder per build under ``<home>/datasets/<workload>/<client>/``.

A build folder holds ``eval.jsonl``, ``icl.jsonl``, ``train.jsonl``, ``val.jsonl`` and ``manifest.json``.
Files are written into a hidden partial folder and renamed into place only when the manifest is written,
so a crashed build never leaves a folder that looks complete.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from dataflywheel.records.jsonvalue import JsonObject

DATASET_FILES = ("eval.jsonl", "icl.jsonl", "train.jsonl", "val.jsonl")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(value: str) -> str:
    """A path segment for an id: unsafe characters replaced, with a short hash when anything changed."""
    cleaned = _SAFE.sub("_", value).strip(".") or "_"
    if cleaned != value:
        cleaned += "-" + hashlib.sha256(value.encode()).hexdigest()[:6]
    return cleaned


@dataclass
class FileStats:
    records: int = 0
    bytes: int = 0
    sha256: str = ""


class _JsonlWriter:
    """Appends JSONL rows; hashing and writing happen on a background thread in large chunks.

    Both ``hashlib`` and file writes release the GIL on large buffers, so the disk work of a build overlaps
    the Python work of serializing the next rows. One thread per file keeps the order.
    """

    _CHUNK = 4 << 20

    def __init__(self, path: Path) -> None:
        self._f: IO[bytes] = path.open("wb")
        self._hash = hashlib.sha256()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"write-{path.name}")
        self._pending: list[Future[None]] = []
        self._buffer: list[bytes] = []
        self._buffered = 0
        self.stats = FileStats()

    def write(self, row: Any) -> None:
        # Sorted keys: the bytes do not depend on the key order a store returns (JSONB reorders them).
        self.write_bytes(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))

    def write_bytes(self, line: bytes) -> None:
        """Append one row already serialized (without its newline)."""
        self._buffer.append(line)
        self._buffered += len(line) + 1
        self.stats.records += 1
        if self._buffered >= self._CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        data = b"\n".join(self._buffer) + b"\n"
        self._buffer, self._buffered = [], 0
        self.stats.bytes += len(data)
        for done in [f for f in self._pending if f.done()]:
            done.result()  # a failed write surfaces at the next flush, not only at close
            self._pending.remove(done)
        while len(self._pending) >= 2:  # back-pressure: at most two chunks wait for the disk
            self._pending.pop(0).result()
        self._pending.append(self._pool.submit(self._sink, data))

    def _sink(self, data: bytes) -> None:
        self._hash.update(data)
        self._f.write(data)

    def close(self) -> FileStats:
        self._flush()
        self._pool.shutdown(wait=True)
        try:
            for future in self._pending:
                future.result()  # re-raise a failed write here
        finally:
            self._f.close()
        self.stats.sha256 = self._hash.hexdigest()
        return self.stats


class DatasetWriter:
    """Writes one build's files, then publishes them atomically with :meth:`publish`."""

    def __init__(self, datasets_dir: Path, workload_id: str, client_id: str) -> None:
        self.parent = datasets_dir / safe_name(workload_id) / safe_name(client_id)
        self.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.parent / f".partial-{uuid.uuid4().hex}"
        self.partial.mkdir()
        self._writers = {name: _JsonlWriter(self.partial / name) for name in DATASET_FILES}
        self.files: dict[str, FileStats] = {}
        self.path: Path | None = None
        self.manifest: JsonObject = {}

    def write(self, name: str, row: Any) -> None:
        self._writers[name].write(row)

    def write_bytes(self, name: str, line: bytes) -> None:
        self._writers[name].write_bytes(line)

    def publish(self, manifest: JsonObject, created: datetime | None = None) -> Path:
        """Close the files, write the manifest and move the folder into place; return its path."""
        self.close_files()
        created = created or datetime.now(UTC)
        content = hashlib.sha256("".join(self.files[n].sha256 for n in DATASET_FILES).encode()).hexdigest()
        build_id = f"{created:%Y%m%dT%H%M%S}Z-{content[:8]}"
        target = self.parent / build_id
        suffix = 1
        while target.exists():
            suffix += 1
            target = self.parent / f"{build_id}.{suffix}"
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "build_id": target.name,
            "created_at": created.isoformat(),
            "content_sha256": content,
            "files": {n: vars(self.files[n]) for n in DATASET_FILES},
            **manifest,
        }
        (self.partial / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        self.partial.rename(target)
        self.path = target
        self.manifest = manifest
        return target

    def close_files(self) -> None:
        for name, w in self._writers.items():
            if name not in self.files:
                self.files[name] = w.close()

    def abort(self) -> None:
        self.close_files()
        shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.path is None:
            self.abort()


def read_manifest(build_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((build_dir / MANIFEST).read_bytes())
    return data


def list_builds(datasets_dir: Path, workload_id: str, client_id: str) -> list[Path]:
    """Published builds of a workload/client, oldest first."""
    parent = datasets_dir / safe_name(workload_id) / safe_name(client_id)
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and (p / MANIFEST).is_file())
