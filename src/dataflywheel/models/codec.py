"""The one place that turns chat requests into model text and model text back into OpenAI messages.

Serving, evaluation and training all use :class:`ToolCallCodec`, so a candidate is trained on exactly the
prompt it is later served (train/serve parity is a tested, token-exact property).

Two modes, chosen once from the tokenizer:

* **native**: the tokenizer's chat template renders ``tools`` itself (Qwen2.5, Llama 3.1, ...). Prompts come
  from the template; an answer is what the template renders for the assistant turn.
* **fallback**: the template ignores ``tools`` (SmolLM2's ChatML template does). The codec renders the tool
  schemas into the system turn itself, *before* any other text, so every request with the same tools shares
  one byte-identical prefix (in a routing workload about 88% of the prompt)::

      <|im_start|>system
      # Tools
      ...
      <tools>
      {"type": "function", "function": {"name": ..., "description": ..., "parameters": ...}}
      </tools>
      ...
      <tool_call>
      {"name": <function-name>, "arguments": <args-json-object>}
      </tool_call>

      <the request's own system prompt><|im_end|>
      <|im_start|>user
      ...<|im_end|>
      <|im_start|>assistant

  Prior assistant tool calls are rendered in the canonical ``<tool_call>`` format, ``tool`` messages as a user
  turn holding ``<tool_response>...</tool_response>`` blocks.

``tool_choice`` is honoured by *prefill*: text the assistant turn is forced to start with (``required``: the
opening of a call up to the tool name; a named function: up to its arguments; ``none``: no tools rendered).
A model's output is read back with :func:`dataflywheel.models.toolparse.parse_tool_calls`, which repairs the
many ways a small model drifts from the canonical format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from dataflywheel.models.toolparse import ParsedOutput, format_tool_call, parse_tool_calls
from dataflywheel.models.types import ToolChoice
from dataflywheel.records.chat import WireToolCall, content_text
from dataflywheel.records.jsonvalue import JsonObject, JsonValue
from dataflywheel.records.toolcalls import parse_arguments

__all__ = [
    "CHATML_TEMPLATE",
    "ParsedAnswer",
    "RenderedPrompt",
    "ToolCallCodec",
    "fallback_prefill",
    "parse_answer",
    "render_tools_block",
]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""Used for a tokenizer that has no chat template of its own."""

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_INSTRUCTIONS = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}'
    "\n</tool_call>"
)

_CANONICAL_CALL_PREFIX = '<tool_call>\n{"name": "'
_CANONICAL_ARGS_INFIX = '", "arguments":'
_PROBE_NAME = "dfw_probe_tool_7c1e"
_PROBE_ARG = "dfw_probe_arg_7c1e"
_PROBE_TEXT = "dfw_probe_text_7c1e"


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready for generation."""

    text: str
    """The whole prompt, up to and including the assistant generation prompt and the prefill."""
    prefill: str = ""
    """Text the assistant turn is forced to start with (already at the end of ``text``); the model's
    output continues it, so ``prefill + generated`` is the answer to parse."""


@dataclass(frozen=True)
class ParsedAnswer:
    """A model's output read back: the OpenAI assistant message and what the parser saw and repaired."""

    message: JsonObject
    """The assistant message (:class:`~dataflywheel.records.chat.WireMessage` form; a JSON object, as the
    engine's :class:`~dataflywheel.models.types.ChatResult` carries it)."""
    output: ParsedOutput

    @property
    def problems(self) -> list[str]:
        return self.output.problems


class _TextTurn(TypedDict):
    """A message as the fallback renders it: a role and plain text."""

    role: str
    content: str


def _normalize_tool(tool: object) -> JsonObject:
    """An OpenAI tool as ``{"type": "function", "function": {...}}`` (also accepts the flat form)."""
    if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
        return {**tool, "type": tool.get("type", "function")}
    if isinstance(tool, dict) and "name" in tool:
        return {"type": "function", "function": tool}
    return tool if isinstance(tool, dict) else {"type": "function", "function": {"name": str(tool)}}


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _canonical_tool(tool: Mapping[str, object]) -> JsonObject:
    """A tool with a fixed key order: type, then function name, description, parameters, then the rest (every
    nested object's keys sorted), so equal tools always render to the same bytes."""
    tool = _normalize_tool(tool)
    fn = tool.get("function")
    if not isinstance(fn, dict):
        return dict(_sorted_keys(tool))
    first = [k for k in ("name", "description", "parameters") if k in fn]
    ordered_fn = {k: _sorted_keys(fn[k]) for k in [*first, *sorted((k for k in fn if k not in first), key=str)]}
    rest = {k: _sorted_keys(tool[k]) for k in sorted(tool, key=str) if k not in ("type", "function")}
    return {"type": tool.get("type", "function"), "function": ordered_fn, **rest}


def render_tools_block(tools: Sequence[Mapping[str, object]]) -> str:
    """The fallback system-turn text describing ``tools``: one JSON line per tool (in a fixed key order, so
    equal tools always give the same bytes) between the preamble and the ``<tool_call>`` instructions."""
    lines = "\n".join(json.dumps(_canonical_tool(t), ensure_ascii=False) for t in tools)
    return TOOLS_PREAMBLE + lines + TOOLS_INSTRUCTIONS


def _text(content: object) -> str:
    """Message content as plain text (:func:`~dataflywheel.records.chat.content_text`); other values are JSON."""
    return content_text(content, _json)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _calls(message: Mapping[str, object]) -> list[tuple[str, Any]]:
    """(name, arguments) of a message's tool calls; arguments given as JSON strings become objects."""
    out: list[tuple[str, Any]] = []
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        inner = call.get("function")
        fn: Mapping[str, object] = inner if isinstance(inner, dict) else call
        name = fn.get("name")
        args = parse_arguments(fn.get("arguments", {}))
        out.append((str(name) if name is not None else "", {} if args is None else args))
    return out


def _choice_name(tool_choice: ToolChoice) -> str | None:
    if not isinstance(tool_choice, dict):
        return None
    fn = tool_choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else tool_choice.get("name")
    return name if isinstance(name, str) and name else None


class ToolCallCodec:
    """Prompts, answers, training examples and output parsing for one tokenizer (see the module docstring)."""

    def __init__(self, tokenizer: Any) -> None:
        """``tokenizer``: a transformers tokenizer (anything with ``apply_chat_template`` and ``eos_token``)."""
        self.tokenizer = tokenizer
        self._template: str | None = None if getattr(tokenizer, "chat_template", None) else CHATML_TEMPLATE
        self.native_tools: bool = self._detect_native_tools()
        """True when the tokenizer's own chat template renders ``tools``."""
        self.end_of_turn: str = self._detect_end_of_turn()
        """The text that closes an assistant turn (``<|im_end|>`` for ChatML)."""
        self._call_prefix, self._args_prefix = self._detect_call_prefixes()

    @classmethod
    def for_model_dir(cls, path: str | Path) -> ToolCallCodec:
        """The codec of the tokenizer saved in a model folder (or a hub id)."""
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(path)))

    # ------------------------------------------------------------------------------------------ template

    def _chat(
        self,
        messages: Sequence[Mapping[str, object]],
        *,
        generation: bool,
        tools: Sequence[Mapping[str, object]] | None = None,
    ) -> str:
        kwargs: dict[str, object] = {"tokenize": False, "add_generation_prompt": generation}
        if tools:
            kwargs["tools"] = tools
        if self._template is not None:
            kwargs["chat_template"] = self._template
        text = self.tokenizer.apply_chat_template(messages, **kwargs)
        if not isinstance(text, str):
            raise TypeError(f"apply_chat_template returned {type(text).__name__}, not text")
        return text

    def _detect_native_tools(self) -> bool:
        probe = [{"type": "function", "function": {"name": _PROBE_NAME, "description": "probe", "parameters": {}}}]
        try:
            return _PROBE_NAME in self._chat([{"role": "user", "content": "hi"}], generation=True, tools=probe)
        except Exception:  # a template that chokes on tools does not render them
            return False

    def _detect_end_of_turn(self) -> str:
        eos = getattr(self.tokenizer, "eos_token", None)
        eos = eos if isinstance(eos, str) else ""
        try:
            text = self._chat(
                [{"role": "user", "content": "x"}, {"role": "assistant", "content": _PROBE_TEXT}], generation=False
            )
        except Exception:
            return eos
        at = text.rfind(_PROBE_TEXT)
        suffix = text[at + len(_PROBE_TEXT) :] if at >= 0 else ""
        if eos and eos in suffix:
            suffix = suffix[: suffix.index(eos) + len(eos)]
        return suffix.strip() or eos

    def _detect_call_prefixes(self) -> tuple[str, tuple[str, str]]:
        """From the answer rendered for a probe call: the text before the tool name (the ``required``
        prefill) and the text around the name up to the arguments (the named prefill)."""
        canonical = (_CANONICAL_CALL_PREFIX, (_CANONICAL_CALL_PREFIX, _CANONICAL_ARGS_INFIX))
        answer = self.render_answer({"role": "assistant", "content": "", "tool_calls": [_probe_call({_PROBE_ARG: 1})]})
        name_at = answer.find(_PROBE_NAME)
        arg_at = answer.find(json.dumps(_PROBE_ARG))
        args_at = answer.rfind("{", 0, arg_at) if arg_at >= 0 else -1
        if name_at < 0 or args_at < name_at + len(_PROBE_NAME):
            return canonical
        before = answer[:name_at]
        between = answer[name_at + len(_PROBE_NAME) : args_at].rstrip(" ")
        return before, (before, between)

    # ------------------------------------------------------------------------------------------- prompts

    @property
    def stop_strings(self) -> list[str]:
        """Strings that end an answer: the end-of-turn token (and EOS). ``</tool_call>`` is not one: several
        calls may follow each other."""
        out = [s for s in (self.end_of_turn, getattr(self.tokenizer, "eos_token", None)) if isinstance(s, str) and s]
        return list(dict.fromkeys(out))

    def prefill(self, tool_choice: ToolChoice) -> str:
        """The text a ``tool_choice`` forces the answer to start with ("" for auto, none and None)."""
        if tool_choice == "required":
            return self._call_prefix
        name = _choice_name(tool_choice)
        if name is None:
            return ""
        before, between = self._args_prefix
        return before + json.dumps(name, ensure_ascii=False)[1:-1] + between

    def render_prompt(
        self,
        messages: Sequence[Mapping[str, object]],
        tools: Sequence[Mapping[str, object]] | None = None,
        tool_choice: ToolChoice = None,
    ) -> RenderedPrompt:
        """The prompt for the next assistant turn of ``messages``, with ``tools`` offered (unless
        ``tool_choice`` is ``"none"``) and the prefill ``tool_choice`` asks for."""
        offered = [_normalize_tool(t) for t in tools] if tools and tool_choice != "none" else None
        if self.native_tools:
            text = self._chat(self._native_messages(messages), generation=True, tools=offered)
        else:
            text = self._chat(self._fallback_messages(messages, offered), generation=True)
        prefill = self.prefill(tool_choice) if offered else ""
        return RenderedPrompt(text=text + prefill, prefill=prefill)

    def tools_block(self, tools: Sequence[Mapping[str, object]]) -> str:
        """The system-turn text the fallback renders for ``tools`` (the start of every such prompt's system
        turn)."""
        return render_tools_block([_normalize_tool(t) for t in tools])

    def _fallback_messages(
        self, messages: Sequence[Mapping[str, object]], tools: Sequence[Mapping[str, object]] | None
    ) -> list[_TextTurn]:
        out: list[_TextTurn] = []
        in_tool_turn = False
        for msg in messages:
            role = msg.get("role")
            if role in ("tool", "function"):
                block = f"<tool_response>\n{_text(msg.get('content'))}\n</tool_response>"
                if in_tool_turn:
                    out[-1]["content"] += "\n" + block
                else:
                    out.append({"role": "user", "content": block})
                in_tool_turn = True
                continue
            in_tool_turn = False
            if role == "assistant":
                out.append({"role": "assistant", "content": self.assistant_text(msg)})
            else:
                out.append(
                    {"role": "system" if role == "developer" else str(role), "content": _text(msg.get("content"))}
                )
        if tools:
            block = render_tools_block(tools)
            if out and out[0]["role"] == "system":
                system = out[0]["content"]
                out[0] = {"role": "system", "content": block + ("\n\n" + system if system else "")}
            else:
                out.insert(0, {"role": "system", "content": block})
        return out

    def _native_messages(self, messages: Sequence[Mapping[str, object]]) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for msg in messages:
            new: dict[str, object] = {**msg, "content": _text(msg.get("content"))}
            calls = msg.get("tool_calls")
            if calls:
                native: list[WireToolCall] = []
                for c, (name, args) in zip(calls if isinstance(calls, list) else [], _calls(msg), strict=False):
                    call: WireToolCall = {"id": c["id"]} if isinstance(c, dict) and c.get("id") else {}
                    call["type"] = "function"
                    call["function"] = {"name": name, "arguments": args}
                    native.append(call)
                new["tool_calls"] = native
            else:
                new.pop("tool_calls", None)
            out.append(new)
        return out

    # ------------------------------------------------------------------------------------------- answers

    def assistant_text(self, message: Mapping[str, object]) -> str:
        """The canonical text of an assistant message (without end-of-turn): its content, then one
        ``<tool_call>`` block per call, one per line."""
        blocks = [format_tool_call(name, args) for name, args in _calls(message)]
        content = _text(message.get("content"))
        return "\n".join([content, *blocks] if content else blocks)

    def render_answer(self, message: Mapping[str, object]) -> str:
        """The assistant message as the model must generate it, ending with the end-of-turn token; a
        training row is ``render_prompt(messages[:-1], tools).text + render_answer(messages[-1])``."""
        if self.native_tools:
            answer = self._native_answer(message)
            if answer is not None:
                return answer
        return self.assistant_text(message) + self.end_of_turn

    def _native_answer(self, message: Mapping[str, object]) -> str | None:
        """What the native template renders for ``message`` as an assistant turn; None if it cannot say."""
        context: list[dict[str, object]] = [{"role": "user", "content": "x"}]
        try:
            head = self._chat(context, generation=True)
            full = self._chat(context + self._native_messages([message]), generation=False)
        except Exception:
            return None
        if not full.startswith(head):
            return None
        rest = full[len(head) :]
        if self.end_of_turn and self.end_of_turn in rest:
            return rest[: rest.index(self.end_of_turn) + len(self.end_of_turn)]
        return rest

    def training_example(self, row: Mapping[str, object]) -> tuple[str, str]:
        """(prompt, completion) of a training row (:class:`~dataflywheel.records.chat.TrainingRow`:
        ``{"messages": [..., assistant], "tools"?: [...]}``)."""
        messages = row.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValueError("training row has no messages")
        answer = messages[-1]
        if not isinstance(answer, dict) or answer.get("role") != "assistant":
            raise ValueError("the last message of a training row must be the assistant's answer")
        tools = row.get("tools")
        prompt = self.render_prompt(messages[:-1], tools if isinstance(tools, list) else None)
        return prompt.text, self.render_answer(answer)

    # ------------------------------------------------------------------------------------------- parsing

    def parse_detailed(
        self, generated_text: str, tools: Sequence[Mapping[str, object]] | None = None, prefill: str = ""
    ) -> ParsedAnswer:
        """Like :meth:`parse`, also returning what the parser found and repaired."""
        return parse_answer(generated_text, tools, prefill, self.stop_strings)

    def parse(
        self, generated_text: str, tools: Sequence[Mapping[str, object]] | None = None, prefill: str = ""
    ) -> JsonObject:
        """The OpenAI assistant message a model's output (continuing ``prefill``) means: ``content`` (None when
        only calls are left) and ``tool_calls`` (arguments as JSON strings; omitted when there are none)."""
        return self.parse_detailed(generated_text, tools, prefill).message


def parse_answer(
    generated_text: str,
    tools: Sequence[Mapping[str, object]] | None = None,
    prefill: str = "",
    stop_strings: Sequence[str] = (),
) -> ParsedAnswer:
    """A model's output (continuing ``prefill``, cut at the first of ``stop_strings``) read back into an
    assistant message by our tool-call parser. :meth:`ToolCallCodec.parse_detailed` for a local model; the
    endpoint client for a server that returns the model's text (vLLM with the codec's chat template)."""
    text = prefill + (generated_text or "")
    for stop in stop_strings:
        at = text.find(stop)
        if at >= 0:
            text = text[:at]
    output = parse_tool_calls(text, tools)
    message: JsonObject = {"role": "assistant", "content": output.content}
    if output.calls:
        calls: list[JsonValue] = []
        for i, call in enumerate(output.calls):
            arguments = json.dumps(call.arguments, ensure_ascii=False)
            calls.append(
                {
                    "id": _call_id(i, call.name, arguments),
                    "type": "function",
                    "function": {"name": call.name, "arguments": arguments},
                }
            )
        message["tool_calls"] = calls
    return ParsedAnswer(message=message, output=output)


def fallback_prefill(tool_choice: ToolChoice) -> str:
    """The prefill a ``tool_choice`` forces in the fallback mode (the canonical ``<tool_call>`` opening):
    what :meth:`ToolCallCodec.prefill` gives for a tokenizer whose template ignores tools."""
    if tool_choice == "required":
        return _CANONICAL_CALL_PREFIX
    name = _choice_name(tool_choice)
    if name is None:
        return ""
    return _CANONICAL_CALL_PREFIX + json.dumps(name, ensure_ascii=False)[1:-1] + _CANONICAL_ARGS_INFIX


def _probe_call(arguments: JsonObject) -> WireToolCall:
    return {"type": "function", "function": {"name": _PROBE_NAME, "arguments": arguments}}


def _call_id(index: int, name: str, arguments: str) -> str:
    digest = hashlib.sha256(f"{index}\x00{name}\x00{arguments}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"call_{digest[:16]}"
