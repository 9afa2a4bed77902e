"""The codec's prompt as a Jinja chat template, for servers that render prompts themselves (vLLM).

A candidate trained on :class:`~dataflywheel.models.codec.ToolCallCodec`'s prompts must be served the same
bytes. vLLM renders a chat request with a chat template (``--chat-template FILE``) through the tokenizer's
``apply_chat_template``; :func:`codec_chat_template` writes one that turns the request into what the codec's
*fallback* mode renders (tools in the system turn before any other text, earlier tool calls as canonical
``<tool_call>`` blocks, tool results as ``<tool_response>`` user turns), then hands the messages to the
tokenizer's own template. ``tool_choice`` cannot reach a template in OpenAI's protocol, so a client that
wants the codec's ``tool_choice`` handling sends it as ``chat_template_kwargs.flywheel_tool_choice``
(:data:`TOOL_CHOICE_KWARG`) with the request's own ``tool_choice`` set to ``none`` (the server then leaves the
answer as text for our parser): ``none`` leaves the tools out, ``required`` and a named function append the
codec's prefill.

Train/serve parity is checked by rendering (``tests/models/test_chat_template.py``: the same text as
:meth:`ToolCallCodec.render_prompt`) and against a live vLLM's ``/tokenize`` (``tests/vllm``).

Known differences: a tool whose ``description`` or ``parameters`` is explicitly ``null`` renders without
that key here (vLLM's request model cannot tell null from absent); arguments of earlier calls are rendered
as the server hands them over (vLLM parses JSON-string arguments into objects first, as the codec does).
"""

from __future__ import annotations

from pathlib import Path

from dataflywheel.models.codec import CHATML_TEMPLATE, TOOLS_INSTRUCTIONS, TOOLS_PREAMBLE, ToolCallCodec

__all__ = ["TOOL_CHOICE_KWARG", "codec_chat_template", "write_codec_chat_template"]

TOOL_CHOICE_KWARG = "flywheel_tool_choice"
"""The ``chat_template_kwargs`` key that carries the request's real ``tool_choice`` to the template."""


def _jinja_string(text: str) -> str:
    """``text`` as a Jinja string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# Jinja that rebuilds ToolCallCodec._fallback_messages and render_tools_block. Whitespace control ({%- -%})
# everywhere: only the {{ }} of the macros and the final template write text.
_PRELUDE = (
    """{%- macro dfw_text(c) -%}
{%- if c is none -%}
{%- elif c is string -%}{{ c }}
{%- elif c is mapping -%}{{ c | tojson }}
{%- elif c is iterable -%}
{%- set dfw_parts = namespace(items=[]) -%}
{%- for p in c -%}
{%- if p is string -%}{%- set dfw_parts.items = dfw_parts.items + [p] -%}
{%- elif p is mapping and p.text is defined and p.text is string -%}{%- set dfw_parts.items = dfw_parts.items + [p.text] -%}
{%- endif -%}
{%- endfor -%}{{ dfw_parts.items | join("\\n") }}
{%- else -%}{{ c | tojson }}
{%- endif -%}
{%- endmacro -%}
{%- macro dfw_pairs(obj, first, skip) -%}
{%- set dfw_out = namespace(items=[]) -%}
{%- for k in first -%}
{%- if obj[k] is defined and obj[k] is not none -%}
{%- set dfw_out.items = dfw_out.items + [(k | tojson) + ": " + (obj[k] | tojson(sort_keys=true))] -%}
{%- endif -%}
{%- endfor -%}
{%- for k, v in obj | dictsort(true) -%}
{%- if k not in first and k not in skip and v is not none -%}
{%- set dfw_out.items = dfw_out.items + [(k | tojson) + ": " + (v | tojson(sort_keys=true))] -%}
{%- endif -%}
{%- endfor -%}{{ dfw_out.items | join(", ") }}
{%- endmacro -%}
{%- macro dfw_tool(t) -%}
{%- set dfw_rest = dfw_pairs(t, [], ["type", "function"]) -%}
{"type": {{ (t.type if t.type is defined and t.type is not none else "function") | tojson }}, "function": {{ "{" }}
{{- dfw_pairs(t.function, ["name", "description", "parameters"], []) }}{{ "}" }}{{ (", " + dfw_rest) if dfw_rest else "" }}}
{%- endmacro -%}
{%- macro dfw_args(a) -%}
{%- if a is none -%}{}
{%- elif a is string -%}{{ a }}
{%- else -%}{{ a | tojson }}
{%- endif -%}
{%- endmacro -%}
{%- macro dfw_assistant(m) -%}
{%- set dfw_blocks = namespace(items=[]) -%}
{%- set dfw_content = dfw_text(m.content) -%}
{%- if dfw_content -%}{%- set dfw_blocks.items = [dfw_content] -%}{%- endif -%}
{%- for call in (m.tool_calls or []) -%}
{%- set fn = call.function if call.function is defined and call.function is mapping else call -%}
{%- set dfw_blocks.items = dfw_blocks.items + ["<tool_call>\\n{\\"name\\": " + ((fn.name if fn.name is defined and fn.name is not none else "") | string | tojson) + ", \\"arguments\\": " + dfw_args(fn.arguments if fn.arguments is defined else none) + "}\\n</tool_call>"] -%}
{%- endfor -%}{{ dfw_blocks.items | join("\\n") }}
{%- endmacro -%}
{%- set dfw_choice = """
    + TOOL_CHOICE_KWARG
    + """ if """
    + TOOL_CHOICE_KWARG
    + """ is defined else none -%}
{%- set dfw_offered = tools if (tools and dfw_choice != "none") else none -%}
{%- set dfw = namespace(msgs=[], tool=none) -%}
{%- for m in messages -%}
{%- if m.role in ["tool", "function"] -%}
{%- set dfw_block = "<tool_response>\\n" + dfw_text(m.content) + "\\n</tool_response>" -%}
{%- set dfw.tool = dfw_block if dfw.tool is none else dfw.tool + "\\n" + dfw_block -%}
{%- else -%}
{%- if dfw.tool is not none -%}
{%- set dfw.msgs = dfw.msgs + [{"role": "user", "content": dfw.tool}] -%}{%- set dfw.tool = none -%}
{%- endif -%}
{%- if m.role == "assistant" -%}
{%- set dfw.msgs = dfw.msgs + [{"role": "assistant", "content": dfw_assistant(m)}] -%}
{%- else -%}
{%- set dfw.msgs = dfw.msgs + [{"role": "system" if m.role == "developer" else (m.role | string), "content": dfw_text(m.content)}] -%}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{%- if dfw.tool is not none -%}{%- set dfw.msgs = dfw.msgs + [{"role": "user", "content": dfw.tool}] -%}{%- endif -%}
{%- if dfw_offered -%}
{%- set dfw_lines = namespace(items=[]) -%}
{%- for t in dfw_offered -%}{%- set dfw_lines.items = dfw_lines.items + [dfw_tool(t)] -%}{%- endfor -%}
{%- set dfw_block = """
    + _jinja_string(TOOLS_PREAMBLE)
    + """ + (dfw_lines.items | join("\\n")) + """
    + _jinja_string(TOOLS_INSTRUCTIONS)
    + """ -%}
{%- if dfw.msgs and dfw.msgs[0].role == "system" -%}
{%- set dfw.msgs = [{"role": "system", "content": dfw_block + (("\\n\\n" + dfw.msgs[0].content) if dfw.msgs[0].content else "")}] + dfw.msgs[1:] -%}
{%- else -%}
{%- set dfw.msgs = [{"role": "system", "content": dfw_block}] + dfw.msgs -%}
{%- endif -%}
{%- endif -%}
{%- set messages = dfw.msgs -%}
{%- set tools = none -%}
"""
)

_PREFILL = """
{%- if dfw_offered and add_generation_prompt -%}
{%- if dfw_choice == "required" -%}<tool_call>
{"name": "
{%- elif dfw_choice is mapping -%}
{%- set dfw_fn = dfw_choice.function if (dfw_choice.function is defined and dfw_choice.function is mapping) else dfw_choice -%}
{%- if dfw_fn.name is defined and dfw_fn.name is string and dfw_fn.name -%}<tool_call>
{"name": "{{ (dfw_fn.name | tojson)[1:-1] }}", "arguments":
{%- endif -%}
{%- endif -%}
{%- endif -%}"""


def codec_chat_template(codec: ToolCallCodec) -> str | None:
    """The Jinja chat template that renders what ``codec.render_prompt`` renders, or None when the tokenizer's
    own template renders tools (native mode: the server's default template already is the codec's)."""
    if codec.native_tools:
        return None
    base = getattr(codec.tokenizer, "chat_template", None)
    if not isinstance(base, str) or not base:
        base = CHATML_TEMPLATE
    return _PRELUDE + base + _PREFILL


def write_codec_chat_template(model_dir: str | Path, target: Path) -> Path | None:
    """Write the codec's chat template for the tokenizer in ``model_dir`` to ``target`` (None: native mode,
    nothing written)."""
    template = codec_chat_template(ToolCallCodec.for_model_dir(model_dir))
    if template is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(template, encoding="utf-8")
    return target
