"""A request's ``tools``: :class:`ToolSpec` (one offered tool) and :class:`ToolIndex` (them by name), the one
place that reads an OpenAI tools list.

The tool-call reader (:mod:`.toolparse`), the feedback normalizer and the evaluation metrics all ask the same
questions of a request's tools: which names were offered, what a tool's ``parameters`` schema is, which
offered tool a name a model wrote means. :class:`ToolIndex` answers them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from dataflywheel.records.chat import WireFunctionSpec, WireTool
    from dataflywheel.records.jsonvalue import JsonObject

__all__ = ["FUNCTIONS_PREFIX", "NameMatch", "ToolIndex", "ToolSpec", "strip_functions_prefix", "tool_names"]

FUNCTIONS_PREFIX: Final = "functions."
"""The namespace some models write before a tool's name (``functions.ToReturnsDesk``)."""


def strip_functions_prefix(name: str) -> str:
    """``name`` without a leading ``functions.``."""
    return name[len(FUNCTIONS_PREFIX) :] if name.startswith(FUNCTIONS_PREFIX) else name


@dataclass(frozen=True)
class ToolSpec:
    """One offered tool."""

    name: str
    parameters: JsonObject | None
    """Its ``parameters`` JSON schema; None when absent or not an object."""
    description: str | None = None

    @classmethod
    def from_wire(cls, tool: Mapping[str, Any]) -> ToolSpec | None:
        """The spec of one OpenAI ``tools`` item (``{"type": "function", "function": {...}}``, or the flat
        ``{"name": ..}`` form); None when it names no tool."""
        fn = tool.get("function")
        fn = fn if isinstance(fn, dict | Mapping) else tool
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            return None
        params = fn.get("parameters")
        schema = params if isinstance(params, dict) else dict(params) if isinstance(params, Mapping) else None
        description = fn.get("description")
        return cls(name, schema, description if isinstance(description, str) else None)

    def to_wire(self) -> WireTool:
        """OpenAI's form: ``{"type": "function", "function": {"name", "description"?, "parameters"?}}``."""
        fn: WireFunctionSpec = {"name": self.name}
        if self.description is not None:
            fn["description"] = self.description
        if self.parameters is not None:
            fn["parameters"] = self.parameters
        return {"type": "function", "function": fn}

    @property
    def properties(self) -> tuple[str, ...]:
        """The argument names its schema lists under ``properties``, in order."""
        props = self.parameters.get("properties") if self.parameters is not None else None
        return tuple(k for k in props if isinstance(k, str)) if isinstance(props, dict) else ()


@dataclass(frozen=True)
class NameMatch:
    """Which offered tool a written name means."""

    name: str | None
    """The offered tool's name; None when no tool (or several, differing in case only) match."""
    case_only: bool = False
    """Whether the written name differed from it in letter case only."""


@dataclass(frozen=True)
class ToolIndex:
    """The tools of one request, by name, in the order offered (the first of two with one name wins)."""

    specs: dict[str, ToolSpec]
    offered: bool = True
    """Whether the request had a ``tools`` list at all (None is "not said", unlike ``[]``)."""

    @classmethod
    def of(cls, tools: Iterable[Any] | ToolIndex | None) -> ToolIndex:
        """The index of an OpenAI ``tools`` list (``{"type": "function", "function": {...}}`` items, or the flat
        ``{"name": ..}`` form); items without a name are skipped."""
        if isinstance(tools, ToolIndex):
            return tools
        specs: dict[str, ToolSpec] = {}
        for tool in tools or []:
            if not isinstance(tool, dict | Mapping):  # dict first: the common case, and a fast check
                continue
            spec = ToolSpec.from_wire(tool)
            if spec is not None and spec.name not in specs:
                specs[spec.name] = spec
        return cls(specs, tools is not None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self.specs.values())

    def __bool__(self) -> bool:
        return bool(self.specs)

    def schema(self, name: str) -> JsonObject | None:
        """The ``parameters`` schema of the tool called exactly ``name`` (None: unknown, or no schema)."""
        spec = self.specs.get(name)
        return spec.parameters if spec is not None else None

    def properties(self, name: str) -> tuple[str, ...]:
        """The argument names of the tool called exactly ``name`` (empty when unknown)."""
        spec = self.specs.get(name)
        return spec.properties if spec is not None else ()

    def resolve(self, name: str) -> NameMatch:
        """The offered tool ``name`` means: itself, or the one tool whose name differs only in letter case.
        Never a "closest" name: anything else matches nothing."""
        if name in self.specs:
            return NameMatch(name)
        folded = name.lower()
        matches = [n for n in self.specs if n.lower() == folded]
        return NameMatch(matches[0], True) if len(matches) == 1 else NameMatch(None)


def tool_names(tools: Iterable[Any] | None) -> list[str]:
    """The function names of an OpenAI ``tools`` list (also accepts the flat ``{"name": ..}`` form)."""
    return list(ToolIndex.of(tools).names)
