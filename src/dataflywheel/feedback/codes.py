"""The feedback normalizer's vocabularies: the verdict on an output, why it was rejected, what was repaired.

Each value is also the code written before ``:`` in :attr:`~dataflywheel.feedback.normalize.Normalized.repairs`
and ``warnings`` entries, and the key of the normalizer report's counters.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["NormalizeStatus", "RejectReason", "RepairCode", "WarningCode"]


class NormalizeStatus(StrEnum):
    """The verdict on one output."""

    OK = "ok"
    """Canonical already: the message says exactly what the output said, nothing was changed."""
    REPAIRED = "repaired"
    """Usable after the repairs listed in :attr:`Normalized.repairs`."""
    REJECTED = "rejected"
    """Unusable; :attr:`Normalized.reason` says why."""


class RejectReason(StrEnum):
    """Why an output was rejected. When several apply, the first found in this order is given."""

    EMPTY_OUTPUT = "empty_output"
    """Nothing at all: None, blank text, a message with neither content nor tool calls."""
    UNPARSEABLE = "unparseable"
    """Something call-like that cannot be read (an unreadable ``<tool_call>`` block, a malformed
    ``tool_calls`` entry, a call-like tag or name left in the text)."""
    TRUNCATED = "truncated"
    """The output ends inside a value (a string, a key, a number): what the model meant is lost."""
    INVALID_ARGUMENTS = "invalid_arguments"
    """A call's arguments cannot be read as a JSON object."""
    SCHEMA_ECHO = "schema_echo"
    """Tool definitions pasted back without argument values, or with values in several of them."""
    NO_TOOL_CALL = "no_tool_call"
    """A text answer where ``tool_choice`` requires a call (``"required"`` or a named function)."""
    UNEXPECTED_TOOL_CALL = "unexpected_tool_call"
    """A call although ``tool_choice`` is ``"none"``."""
    UNKNOWN_TOOL = "unknown_tool"
    """A call to a tool the request did not offer."""
    WRONG_TOOL = "wrong_tool"
    """``tool_choice`` names one function and another one was called."""
    SCHEMA_ERROR = "schema_error"
    """Arguments that violate the tool's schema (missing required, wrong type, not in the enum, ...)."""
    MULTIPLE_CALLS = "multiple_calls_not_allowed"
    """Several different calls while ``parallel_tool_calls`` is False."""


class RepairCode(StrEnum):
    """What was changed to make an output canonical (the code before ``:`` in a repair)."""

    BARE_JSON_CALL = "bare_json_call"
    """A JSON call outside ``<tool_call>`` tags (also after ``<|python_tag|>``, or a JSON list of calls)."""
    FUNCTION_TAG_CALL = "function_tag_call"
    """``<function>Name{..}``, ``<function=Name>{..}</function>``, ``<function name="..">``."""
    XML_TAG_CALL = "xml_tag_call"
    """A tag named after the tool: ``<Tool arg=".."/>``, ``<Tool><arg>..</arg></Tool>``, ``<Tool>{..}</Tool>``."""
    CALL_SYNTAX = "call_syntax"
    """``functions.Name({..})``, ``Name(arg="..")``, ``Name={..}``."""
    SCHEMA_ECHO = "schema_echo"
    """Arguments taken from a pasted tool definition or JSON schema (or pasted definitions removed)."""
    CODE_FENCE = "code_fence"
    """Markdown code fences around a call."""
    UNCLOSED_TAG = "unclosed_tag"
    """A ``<tool_call>`` block without its closing tag."""
    IGNORED_TEXT = "ignored_text"
    """Stray text inside a call block or tag was dropped (named in the detail)."""
    XML_TEXT_BODY = "xml_text_body"
    """The text inside ``<Tool>..</Tool>`` taken as the tool's only parameter."""
    SINGLE_QUOTES = "single_quotes"
    PYTHON_LITERALS = "python_literals"
    """``True`` / ``False`` / ``None`` read as JSON literals."""
    TRAILING_COMMA = "trailing_comma"
    """Trailing or doubled commas removed."""
    MISSING_COMMA = "missing_comma"
    UNQUOTED_KEYS = "unquoted_keys"
    UNESCAPED_QUOTES = "unescaped_quotes"
    """Quotes inside a string that were not escaped."""
    CLOSED_BRACKETS = "closed_brackets"
    """Missing closing brackets, quotes, parentheses or tag ends added at the end of a complete value."""
    ARGUMENTS_AS_STRING = "arguments_as_string"
    """In text: ``"arguments"`` written as a JSON string holding the object."""
    ARGUMENTS_AS_OBJECT = "arguments_as_object"
    """In a message: ``function.arguments`` given as an object instead of a JSON string."""
    DOUBLE_ENCODED = "double_encoded_arguments"
    """Arguments JSON-encoded twice (a JSON string holding a JSON string)."""
    EXTRA_TEXT = "extra_text"
    """Text before or after the arguments' JSON in an ``arguments`` string was dropped."""
    EMPTY_ARGUMENTS = "empty_arguments"
    """Arguments absent, null or empty: ``{}`` used (the schema check then sees what is missing)."""
    FLAT_ARGUMENTS = "flat_arguments"
    """Arguments written beside the name (``{"name": "X", "query": ".."}``)."""
    NESTED_CALL = "nested_call"
    """``arguments`` holding the whole call again (``{"name": "X", "arguments": {..}}``)."""
    TOOL_NAME_CASE = "tool_name_case"
    """A tool name differing from the request's only in letter case."""
    TOOL_NAME_PREFIX = "tool_name_prefix"
    """A ``functions.`` prefix (or blanks) removed from a ``tool_calls`` name."""
    TOOL_CALLS_NOT_LIST = "tool_calls_not_list"
    """``tool_calls`` given as one object instead of a list."""
    LEGACY_FUNCTION_CALL = "legacy_function_call"
    """OpenAI's old ``function_call`` field read as a tool call."""
    DUPLICATE_CALL = "duplicate_call"
    """An identical call (same name and arguments) written again was removed."""
    SCHEMA_COERCION = "schema_coercion"
    """A value coerced losslessly to the schema's type (``"3"`` -> ``3``, ``"true"`` -> ``true``, ...)."""
    PARSER_REPAIR = "parser_repair"
    """No longer made (every finding of the tool-call reader has its own code); kept so that reports written
    before still read."""


class WarningCode(StrEnum):
    """What was noticed and left as it is (the code before ``:`` in a warning)."""

    UNKNOWN_ARGUMENT = "unknown_argument"
    """An argument the tool's schema does not list (kept, not renamed)."""
