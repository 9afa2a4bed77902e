"""Re-export: the tool index lives in :mod:`dataflywheel.records.tools`, the typed OpenAI-chat layer."""

from __future__ import annotations

from dataflywheel.records.tools import (
    FUNCTIONS_PREFIX,
    NameMatch,
    ToolIndex,
    ToolSpec,
    strip_functions_prefix,
    tool_names,
)

__all__ = ["FUNCTIONS_PREFIX", "NameMatch", "ToolIndex", "ToolSpec", "strip_functions_prefix", "tool_names"]
