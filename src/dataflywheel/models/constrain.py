"""Tool names that cannot be invented: while the local engine writes a tool call's name, only the names of
the request's ``tools`` can come out (a logits mask over the tokens that may follow).

How it works
    Every call the codec writes opens the same way: the text :meth:`ToolCallCodec.prefill` forces for
    ``tool_choice="required"`` (``<tool_call>`` + newline + ``{"name": "`` in the codec's own format).
    :func:`call_opening` turns that text into a pattern that also accepts other whitespace
    (``<tool_call>{"name":"``). One :class:`ToolNameConstraint` per generated row follows the answer's text
    (the prefill, then each generated token's text) and tells, before each step, which tokens may come next:

    * inside a name field (after an opening, before its closing quote), with ``partial`` written so far: only
      tokens whose text keeps ``partial`` a prefix of a tool name, or completes a name and closes the string
      (``"`` and what may follow in the same token, such as ``",``). Looked up in the vocabulary's token texts
      sorted once (:class:`TokenTexts`): a few look-ups per name and character, never a scan of the vocabulary;
      the allowed ids are cached per partial name.
    * after the name: the codec's text up to the arguments (``", "arguments":``, from its prefill for a named
      ``tool_choice``), then the arguments' ``{``. Without it a model may close the name and go on writing
      garbage that a lenient parser reads as part of the name (a random model does).
    * where the text ends with part of an opening (``...{"name":``): the tokens that would finish the opening
      *and* start a name in the same token (only tokens holding the opening's last character can) are checked,
      and those starting a name no tool has are banned.
    * anywhere else (the arguments' values included): no mask; the step costs one short regex search.

    Names are matched as the codec writes them (JSON-escaped; a non-ASCII name also in its ``\\u`` form, which
    single-byte tokens can always spell).

Limits
    * ``max_tokens`` can still cut a name short (the text then ends in a prefix of a tool name).
    * Native chat templates whose call is not "a tag, then the JSON object" (Llama 3.1's bare ``{"name": ...}``,
      whose opening also appears inside arguments; templates that write other text before every call) are left
      unconstrained: :func:`call_opening` returns None for them.
    * A token's text is the token decoded alone (exact for byte-level BPE; for SentencePiece the word-start
      marker is read as a space). A character split over several byte tokens is not matched: a name's ``\\u``
      form covers non-ASCII names.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallOpening", "TokenMask", "TokenTexts", "ToolNameConstraint", "ToolNameRule", "call_opening"]

_UNIT_RE = re.compile(r"\s+|[{}\[\]:,]|[^\s{}\[\]:,]+")
"""Pieces of an opening between which any whitespace is accepted: JSON punctuation, words, whitespace."""
_TAGGED_CALL_RE = re.compile(r'<[^<>\s]+>\s*\{\s*"[^"\s]+"\s*:\s*"')
"""The shape an opening must have to be followed in generated text: a tag, then a JSON object's first key."""
_PROBE_NAME = "dfw_probe_tool_3f9a"
_ARGS_START_RE = re.compile(r"\s*\{")
_ARGS_NEXT_RE = re.compile(r"\s*(?:\{.*)?\Z", re.DOTALL)
"""What may follow the text before the arguments in the same token: whitespace, then the arguments' ``{``."""
_WINDOW = 256
"""Characters of text outside name fields kept to find the next opening in."""
_SENTENCEPIECE_SPACE = "\u2581"


class TokenTexts:
    """Every token's text (the token decoded alone), with look-ups by exact text and by prefix. Built once per
    tokenizer (about half a second for a 49k vocabulary on two CPU cores)."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = list(texts)
        order = sorted(range(len(self.texts)), key=self.texts.__getitem__)
        self._sorted = [self.texts[i] for i in order]
        self._order = order
        self._containing: dict[str, tuple[int, ...]] = {}
        self._matching: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenTexts:
        """The texts of all ``len(tokenizer)`` tokens (added tokens included), without space clean-up."""
        size = len(tokenizer)
        texts: list[str] = tokenizer.batch_decode(
            [[i] for i in range(size)], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
        for i, piece in enumerate(pieces):
            # SentencePiece drops the word-start marker of a lone token; in running text it is a space.
            if isinstance(piece, str) and piece.startswith(_SENTENCEPIECE_SPACE) and not texts[i].startswith(" "):
                texts[i] = " " + texts[i]
        return cls(texts)

    def __len__(self) -> int:
        return len(self.texts)

    def exact(self, text: str) -> list[int]:
        """Ids of the tokens whose text is ``text``."""
        at = bisect.bisect_left(self._sorted, text)
        out = []
        while at < len(self._sorted) and self._sorted[at] == text:
            out.append(self._order[at])
            at += 1
        return out

    def starting_with(self, prefix: str) -> list[int]:
        """Ids of the tokens whose text starts with ``prefix``."""
        at = bisect.bisect_left(self._sorted, prefix)
        out = []
        while at < len(self._sorted) and self._sorted[at].startswith(prefix):
            out.append(self._order[at])
            at += 1
        return out

    def containing(self, char: str) -> tuple[int, ...]:
        """Ids of the tokens whose text holds ``char`` (cached)."""
        found = self._containing.get(char)
        if found is None:
            found = self._containing[char] = tuple(i for i, t in enumerate(self.texts) if char in t)
        return found

    def matching(self, pattern: re.Pattern[str]) -> tuple[int, ...]:
        """Ids of the tokens whose text ``pattern`` matches at its start (cached per pattern)."""
        found = self._matching.get(pattern.pattern)
        if found is None:
            found = self._matching[pattern.pattern] = tuple(i for i, t in enumerate(self.texts) if pattern.match(t))
        return found


@dataclass(frozen=True)
class CallOpening:
    """The text that opens a call's name field, as patterns over generated text."""

    text: str
    """The codec's opening (its ``required`` prefill), leading whitespace removed."""
    complete: re.Pattern[str]
    """The opening with any whitespace between its pieces."""
    partial: re.Pattern[str]
    """A non-empty proper prefix of an opening at the end of the text."""
    after_name: str | None = None
    """The text from a name's closing quote to its arguments (``", "arguments":``); None: not held."""

    @property
    def last_char(self) -> str:
        """The opening's last character (the name's opening quote): a token finishing an opening holds it."""
        return self.text[-1]


def call_opening(prefill: Callable[[Any], str]) -> CallOpening | None:
    """The call opening of a codec, from its ``prefill(tool_choice)``: the ``required`` prefill is the text
    before a tool's name, a named prefill adds the name and the text up to the arguments. None when the
    opening is not a tag followed by a JSON object's first key (not followed, see the module docstring)."""
    required = prefill("required")
    before, found, between = prefill({"type": "function", "function": {"name": _PROBE_NAME}}).partition(_PROBE_NAME)
    after_name = between if found and before == required and between.startswith('"') else None
    text = required.lstrip()
    if not _TAGGED_CALL_RE.fullmatch(text):
        return None
    units = [u for u in _UNIT_RE.findall(text) if not u.isspace()]
    space = r"\s*"
    alternatives: list[str] = []
    for k, unit in enumerate(units):
        head = space.join(re.escape(u) for u in units[:k])
        if head:
            alternatives.append(head + space)
        last = k == len(units) - 1
        for j in range(1, len(unit) + (0 if last else 1)):
            alternatives.append(head + (space if head else "") + re.escape(unit[:j]))
    return CallOpening(
        text=text,
        complete=re.compile(space.join(re.escape(u) for u in units)),
        partial=re.compile("(?:" + "|".join(alternatives) + r")\Z"),
        after_name=after_name,
    )


@dataclass
class TokenMask:
    """The tokens a row may pick next (``allow``) or may not (``allow`` False)."""

    ids: tuple[int, ...]
    allow: bool
    _tensors: dict[Any, Any] = field(default_factory=dict, repr=False)

    def tensor(self, device: Any, width: int) -> Any:
        """The ids below ``width`` (the logits' size) as a tensor on ``device`` (cached)."""
        key = (str(device), width)
        found = self._tensors.get(key)
        if found is None:
            import torch

            found = torch.tensor([i for i in self.ids if i < width], dtype=torch.long, device=device)
            self._tensors[key] = found
        return found


def _json_forms(name: str) -> list[str]:
    """``name`` as it appears between the quotes of a JSON string: as the codec writes it, and ASCII-only."""
    return list(dict.fromkeys(json.dumps(name, ensure_ascii=ensure)[1:-1] for ensure in (False, True)))


class ToolNameRule:
    """What one set of tool names allows, for any row: the masks per partial name (cached)."""

    def __init__(self, opening: CallOpening, names: Sequence[str], texts: TokenTexts) -> None:
        self.opening = opening
        self.names = tuple(names)
        self.texts = texts
        self._forms = tuple(dict.fromkeys(form for name in self.names for form in _json_forms(name)))
        self._inside: dict[str, TokenMask | None] = {}
        self._after: dict[str, TokenMask | None] = {}
        self._ahead: dict[str, TokenMask | None] = {}

    def fits(self, text: str) -> bool:
        """Whether ``text`` can begin a name field: a prefix of a name, or a whole name and what may follow."""
        return any(
            form.startswith(text) or (text.startswith(form + '"') and self._after_fits(text[len(form) :]))
            for form in self._forms
        )

    def _after_fits(self, text: str) -> bool:
        """Whether ``text`` (from a name's closing quote) can go on to the arguments."""
        after = self.opening.after_name
        if after is None or after.startswith(text):
            return True
        return text.startswith(after) and _ARGS_NEXT_RE.match(text, len(after)) is not None

    def after_end(self, text: str) -> int | None:
        """From a name's closing quote: where the held text ends (past the arguments' ``{``) in ``text``,
        None when more is to come; 0 when ``text`` left the way (followed no further)."""
        after = self.opening.after_name
        if after is None:
            return 1
        if len(text) < len(after):
            return None if after.startswith(text) else 0
        if not text.startswith(after):
            return 0
        m = _ARGS_START_RE.match(text, len(after))
        if m is not None:
            return m.end()
        return None if not text[len(after) :] or text[len(after) :].isspace() else 0

    def after_name(self, text: str) -> TokenMask | None:
        """The tokens allowed after ``text`` (from a name's closing quote, short of the arguments' ``{``)."""
        if text in self._after:
            return self._after[text]
        after = self.opening.after_name or ""
        ids: set[int] = set()
        if len(text) < len(after):
            rest = after[len(text) :]
            for j in range(1, len(rest) + 1):
                ids.update(self.texts.exact(rest[:j]))
            ids.update(i for i in self.texts.starting_with(rest) if _ARGS_NEXT_RE.match(self.texts.texts[i], len(rest)))
        else:
            ids.update(self.texts.matching(_ARGS_START_RE))
        mask = TokenMask(tuple(sorted(ids)), allow=True) if ids else None
        self._after[text] = mask
        return mask

    def inside_name(self, partial: str) -> TokenMask | None:
        """The tokens allowed after ``partial`` in a name field; None when no name starts with ``partial``
        (some earlier token escaped the constraint: nothing is forced then)."""
        if partial in self._inside:
            return self._inside[partial]
        ids: set[int] = set()
        for form in self._forms:
            if not form.startswith(partial):
                continue
            rest = form[len(partial) :]
            for j in range(1, len(rest) + 1):
                ids.update(self.texts.exact(rest[:j]))
            closing = self.texts.starting_with(rest + '"')
            ids.update(i for i in closing if self._after_fits(self.texts.texts[i][len(rest) :]))
        mask = TokenMask(tuple(sorted(ids)), allow=True) if ids else None
        self._inside[partial] = mask
        return mask

    def ahead_of_name(self, tail: str) -> TokenMask | None:
        """Where the text ends with ``tail``, a partial opening: the tokens that would finish the opening and
        start a name no tool has; None when there are none."""
        if tail in self._ahead:
            return self._ahead[tail]
        banned = []
        complete = self.opening.complete
        for i in self.texts.containing(self.opening.last_char):
            text = tail + self.texts.texts[i]
            m = complete.match(text)
            if m is not None and not self.fits(text[m.end() :]):
                banned.append(i)
        mask = TokenMask(tuple(banned), allow=False) if banned else None
        if len(self._ahead) < 1024:
            self._ahead[tail] = mask
        return mask


class ToolNameConstraint:
    """One row's constraint: follows the answer's text and gives the mask of the next step."""

    def __init__(self, rule: ToolNameRule, prefill: str = "") -> None:
        self.rule = rule
        self._window = ""
        """Text since the last name field (its last :data:`_WINDOW` characters)."""
        self._name: str | None = None
        """Inside a name field: what is written of the name."""
        self._after: str | None = None
        """Between a name's closing quote (included) and its arguments: what is written of that text."""
        self._tail_size = 2 * len(rule.opening.text) + 16
        self._feed(prefill)

    @property
    def state(self) -> str:
        """``name`` (inside a name field), ``after_name`` (on the way to its arguments) or ``free``."""
        return "name" if self._name is not None else "after_name" if self._after is not None else "free"

    def feed(self, token: int) -> None:
        """Follow a generated token."""
        texts = self.rule.texts.texts
        self._feed(texts[token] if 0 <= token < len(texts) else "")

    def _feed(self, text: str) -> None:
        if self._name is not None:
            self._name += text
        elif self._after is not None:
            self._after += text
        else:
            self._window += text
        while True:
            if self._name is not None:
                close = self._name.find('"')
                if close < 0:
                    return
                self._after, self._name = self._name[close:], None
            elif self._after is not None:
                end = self.rule.after_end(self._after)
                if end is None:
                    return
                self._window, self._after = self._after[end:], None
            else:
                m = self.rule.opening.complete.search(self._window)
                if m is None:
                    self._window = self._window[-_WINDOW:]
                    return
                self._name, self._window = self._window[m.end() :], ""

    def mask(self) -> TokenMask | None:
        """The mask of the next step, None for none."""
        if self._name is not None:
            return self.rule.inside_name(self._name)
        if self._after is not None:
            return self.rule.after_name(self._after)
        tail = self._window[-self._tail_size :]
        m = self.rule.opening.partial.search(tail)
        if m is None:
            return None
        return self.rule.ahead_of_name(tail[m.start() :])
