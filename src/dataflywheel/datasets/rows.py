"""Training rows of the selected records, serialized once in the scan and kept compact until the split.

Which set (train or val) a record goes to is known only after every record has been seen, and re-reading
and re-parsing the source to write them would double the build's cost. Instead the scan serializes each
selected record's training row right away and keeps the bytes here:

* the system message and the tool schemas, identical in most records of a workload (~88% of a routing
  record), are stored once and shared;
* each record's own part (its user turns and answer) is appended to large byte chunks, indexed by arrays,
  so 100k rows cost a few dozen MB and no per-row Python objects (which would fragment the heap);
* past ``memory_budget`` bytes, chunks go to a spill file on disk and are read back by offset.

:meth:`RowBuffer.get` returns exactly ``orjson.dumps(to_training_row(record), option=OPT_SORT_KEYS)``
(the parts are serialized by :mod:`dataflywheel.curation.inspect`).
"""

from __future__ import annotations

import os
import tempfile
from array import array
from pathlib import Path
from typing import IO

_CHUNK = 8 << 20
_NONE = -1


class RowBuffer:
    def __init__(self, spill_dir: Path, memory_budget: int = 256 << 20) -> None:
        self.spill_dir = spill_dir
        self.memory_budget = memory_budget
        self._parts: list[bytes] = []
        self._ids: dict[bytes, int] = {}
        self._chunks: list[bytearray | None] = [bytearray()]
        self._spill: IO[bytes] | None = None
        self._spilled_at: dict[int, int] = {}  # chunk index -> offset in the spill file
        self._chunk_of, self._offset, self._length = array("l"), array("l"), array("l")
        self._system_id, self._tools_id = array("l"), array("l")
        self.memory_bytes = 0
        self.spilled_bytes = 0

    def __len__(self) -> int:
        return len(self._length)

    def intern(self, part: bytes) -> int:
        """Id of a shared part (a serialized system message or tool list), stored once."""
        part_id = self._ids.get(part)
        if part_id is None:
            part_id = len(self._parts)
            self._parts.append(part)
            self._ids[part] = part_id
            self.memory_bytes += len(part)
        return part_id

    def append(self, system_id: int, body: bytes, tools_id: int) -> int:
        """Keep one row: its shared system message and tools (ids from :meth:`intern`, or -1 for none)
        and its own part, the comma-joined serialized non-system messages. Returns the row's index."""
        chunk = self._chunks[-1]
        assert chunk is not None
        if len(chunk) + len(body) > _CHUNK and chunk:
            self._seal()
            chunk = self._chunks[-1]
            assert chunk is not None
        self._chunk_of.append(len(self._chunks) - 1)
        self._offset.append(len(chunk))
        self._length.append(len(body))
        self._system_id.append(system_id)
        self._tools_id.append(tools_id)
        chunk += body
        self.memory_bytes += len(body)
        return len(self._length) - 1

    def _seal(self) -> None:
        """Start a new chunk; spill the full one to disk when over the memory budget."""
        index = len(self._chunks) - 1
        full = self._chunks[index]
        assert full is not None
        if self.memory_bytes > self.memory_budget:
            if self._spill is None:
                fd, name = tempfile.mkstemp(prefix="rows-", suffix=".spill", dir=self.spill_dir)
                os.unlink(name)  # gone from the folder at once; the open handle keeps it until closed
                self._spill = os.fdopen(fd, "w+b")
            self._spill.seek(0, os.SEEK_END)
            self._spilled_at[index] = self._spill.tell()
            self._spill.write(full)
            self.memory_bytes -= len(full)
            self.spilled_bytes += len(full)
            self._chunks[index] = None
        self._chunks.append(bytearray())

    def get(self, index: int) -> bytes:
        """The serialized training row of row ``index``."""
        chunk_index, offset, length = self._chunk_of[index], self._offset[index], self._length[index]
        chunk = self._chunks[chunk_index]
        if chunk is None:
            assert self._spill is not None
            self._spill.seek(self._spilled_at[chunk_index] + offset)
            body = self._spill.read(length)
        else:
            body = bytes(chunk[offset : offset + length])
        system_id, tools_id = self._system_id[index], self._tools_id[index]
        out = b'{"messages":['
        if system_id != _NONE:
            out += self._parts[system_id] + (b"," if body else b"")
        out += body + b"]"
        if tools_id != _NONE:
            out += b',"tools":' + self._parts[tools_id]
        return out + b"}"

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self._chunks = [bytearray()]
        self._parts.clear()
        self._ids.clear()
