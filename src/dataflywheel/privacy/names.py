"""Person names, found without a language model.

No NER model can be installed here (spaCy's English pipelines are not on PyPI under their own name, and the
Hugging Face hub is out of reach), so names are found the way a careful reader skims: by cues and word lists.

* **Strong cues** name whatever capitalized words follow them: "my name is", "call me", "name on the card
  is", a title ("Ms.", "Dr"), "Dear", a relation ("my wife"), or a sign-off ("Thanks, Aoife") at the end.
* **Weak cues** ("I'm", "this is", "ship to", "speak to") take capitalized words that are not common ones
  (not "I'm Sorry", "I'm Canadian"); a greeting ("Hi Aoife,") or a last line of its own takes them too.
* **No cue**: a known given name that is not also a common word ("Sarah", not "May") is a name, with the
  capitalized words that follow it ("Sarah Okonkwo").

Capitalized words that are never names (sentence openers, weekdays, brands, places: :data:`STOPWORDS`) end a
name. What this cannot find: a rare name with no cue ("Ask Tadhg about it"), names in lower case, and names
of other scripts.
"""

from __future__ import annotations

import re

from dataflywheel.privacy.kinds import Finding, PiiKind
from dataflywheel.privacy.lexicon import AMBIGUOUS_NAMES, FIRST_NAMES, STOPWORDS, SURNAMES

_TOKEN = r"(?:O'|Mc|Mac)?[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?"
_PARTICLE = r"(?:van|von|der|den|de|del|della|da|di|du|la|le|bin|al|el)"
# up to three name tokens, particles allowed between them ("Ana de la Cruz")
_NAME = rf"{_TOKEN}(?:\s(?:{_PARTICLE}\s){{0,2}}{_TOKEN}){{0,2}}"
_TOKEN_RE = re.compile(_TOKEN)

_RELATIONS = (
    r"wife|husband|son|daughter|partner|friend|mom|mum|mother|dad|father|brother|sister|boss|colleague|coworker|"
    r"co-worker|neighbou?r|grandson|granddaughter|grandma|grandpa|nephew|niece|boyfriend|girlfriend|fianc[eé]e?|"
    r"uncle|aunt|cousin|roommate|manager|assistant"
)
_STRONG = re.compile(
    r"(?:\b(?:my (?:full |first |last )?name is|my name's|call me|i go by|under the name(?: of)?|"
    r"name on the (?:card|account|order|booking|reservation|package) is|(?:full|first|last|customer|contact) name"
    r"(?: is|:)|account holder(?: is|:)|cardholder(?: is|:)?|(?:addressed|made out) to|attn:?|attention:?|"
    rf"dear|my (?:{_RELATIONS})(?:'s name is|,)?))"
    rf"\s+(?P<name>{_NAME})",
    re.IGNORECASE,
)
_TITLE = re.compile(rf"\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sir|Madam)\.?\s+(?P<name>{_NAME})")
_PERSON_CUES = (
    r"i'm|i am|im|this is|it's|it is|here is|speaking with|ask for|talk to|spoke (?:to|with)|speak (?:to|with)|"
    r"ship (?:it |them )?to|deliver (?:it )?to|send (?:it |them )?to|recipient:?|customer:?|name:"
)
_WEAK = re.compile(rf"\b(?:{_PERSON_CUES}),?\s+(?P<name>{_NAME})", re.IGNORECASE)
_HERE = re.compile(rf"(?:^|(?<=[.!?\n]))\s*(?P<name>{_NAME})\s+(?:here|speaking)\b", re.MULTILINE)
_LET_KNOW = re.compile(rf"\blet\s+(?P<name>{_NAME})\s+know\b")
_AS_ROLE = re.compile(rf"(?P<name>{_NAME})\s+as (?:the |my )?(?:recipient|contact|account holder|cardholder)\b")
_SIGN_OFF = re.compile(
    r"(?:thanks|thank you|cheers|regards|best|sincerely|signed|best wishes|kind regards|warm regards|many thanks|"
    r"thx|ty|love|yours)[,!.]?\s*(?:-{1,2}|—)?\s*"
    rf"(?P<name>{_NAME})\s*[.!]?\s*$|^\s*(?:-{{1,2}}|—)\s*(?P<dash>{_NAME})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_AFTER_CAPITALIZED = re.compile(rf"(?<![\w'-]){_TOKEN} $")
_NAME_AT = re.compile(rf"(?P<name>{_NAME})")
_STRONG_WORDS = ("name", "call me", "go by", "holder", "addressed", "made out", "attn", "attention", "dear")
_RELATION_WORDS = tuple(_RELATIONS.replace("?", "").replace("[eé]e", "e").split("|"))
_WEAK_WORDS = (
    "i'm", "i am", "im ", "this is", "it's", "it is", "here is", "speaking", "ask for", "talk to", "spoke",
    "speak", "ship", "deliver", "send", "recipient", "customer", "name:",
)  # fmt: skip
_GREETING_WORDS = ("hi", "hello", "hey", "dear", "good ")


def _tokens(name: str) -> list[re.Match[str]]:
    return list(_TOKEN_RE.finditer(name))


def _trim(text: str, start: int, name: str, first_may_be_stop: bool) -> tuple[int, int] | None:
    """The span of the name's leading run of name-like tokens (stopwords end it), or None."""
    toks = _tokens(name)
    if not toks:
        return None
    first = toks[0].group()
    if first in STOPWORDS and not (first_may_be_stop and (first in FIRST_NAMES or first in AMBIGUOUS_NAMES)):
        return None
    if first.endswith("ing") and first not in FIRST_NAMES:
        return None
    end = toks[0].end()
    for tok in toks[1:]:
        word = tok.group()
        if word in STOPWORDS or (word.endswith("ing") and word not in SURNAMES):
            break
        end = tok.end()
    return start, start + end


def _adjective(word: str) -> bool:
    return word.endswith(("ing", "ed", "ly", "ful", "ous", "ive", "able")) and word not in FIRST_NAMES


_GREETING = re.compile(
    rf"(?:^|(?<=[.!?\n]))\s*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))\s+(?P<name>{_NAME})\s*[,!:]",
    re.IGNORECASE | re.MULTILINE,
)
_LAST_LINE = re.compile(rf"\n\s*(?:-{{1,2}}\s*)?(?P<name>{_NAME})\s*$")


def _known_first(word: str) -> bool:
    return word in FIRST_NAMES and word not in AMBIGUOUS_NAMES


def find_names(text: str) -> list[Finding]:
    out: list[Finding] = []
    # Most texts have none of a pattern's words: skip the pattern (each costs tens of microseconds a text).
    low = text.lower()
    strong = any(w in low for w in _STRONG_WORDS) or ("my " in low and any(w in low for w in _RELATION_WORDS))
    for m in (
        *(_STRONG.finditer(text) if strong else ()),
        *_TITLE.finditer(text),
        *(_AS_ROLE.finditer(text) if " as " in low else ()),
        *(_HERE.finditer(text) if "here" in low or "speaking" in low else ()),
        *(_LET_KNOW.finditer(text) if "let " in low else ()),
    ):
        name = m.group("name")
        if not name[0].isupper():
            continue
        span = _trim(text, m.start("name"), name, first_may_be_stop=True)
        if span:
            out.append(Finding(span[0], span[1], PiiKind.PERSON, text[span[0] : span[1]]))
    greeting = any(w in low for w in _GREETING_WORDS)
    for m in (*(_GREETING.finditer(text) if greeting else ()), *_LAST_LINE.finditer(text)):
        name = m.group("name")
        if not name[0].isupper() or _adjective(_tokens(name)[0].group()):
            continue
        span = _trim(text, m.start("name"), name, first_may_be_stop=False)
        if span:
            out.append(Finding(span[0], span[1], PiiKind.PERSON, text[span[0] : span[1]]))
    for m in _SIGN_OFF.finditer(text, max(0, len(text) - 80)):  # sign-offs end a text
        group = "name" if m.group("name") else "dash"
        name = m.group(group)
        span = _trim(text, m.start(group), name, first_may_be_stop=False)
        if span:
            out.append(Finding(span[0], span[1], PiiKind.PERSON, text[span[0] : span[1]]))
    for m in _WEAK.finditer(text) if any(w in low for w in _WEAK_WORDS) else ():
        name = m.group("name")
        toks = _tokens(name)
        if not toks or not name[0].isupper():
            continue
        first = toks[0].group()
        second = toks[1].group() if len(toks) > 1 else ""
        known = first in FIRST_NAMES or first in AMBIGUOUS_NAMES
        # After a person cue ("I'm", "speak to") a capitalized word that is not a common one is a name.
        two_words = not {first, second} & STOPWORDS and not _adjective(first)
        if (
            (known and (first not in STOPWORDS or second in SURNAMES))
            or (second in SURNAMES and first not in STOPWORDS)
            or two_words
        ):
            span = _trim(text, m.start("name"), name, first_may_be_stop=second in SURNAMES)
            if span:
                out.append(Finding(span[0], span[1], PiiKind.PERSON, text[span[0] : span[1]]))
    for tok in _TOKEN_RE.finditer(text):
        word = tok.group()
        if word not in FIRST_NAMES and word not in AMBIGUOUS_NAMES:
            continue
        if tok.start() and (text[tok.start() - 1].isalnum() or text[tok.start() - 1] in "'-"):
            continue
        if _AFTER_CAPITALIZED.search(text, max(0, tok.start() - 24), tok.start()):
            continue  # inside a capitalized run that starts with no given name: "San Francisco", "Lake Louise"
        m = _NAME_AT.match(text, tok.start())
        if m is None:
            continue
        name = m.group("name")
        toks = _tokens(name)
        first = toks[0].group()
        second = toks[1].group() if len(toks) > 1 else ""
        if _known_first(first) or (first in AMBIGUOUS_NAMES and second in SURNAMES):
            span = _trim(text, m.start("name"), name, first_may_be_stop=second in SURNAMES)
            if span:
                out.append(Finding(span[0], span[1], PiiKind.PERSON, text[span[0] : span[1]]))
    return out


def name_tokens(name: str) -> list[str]:
    """The capitalized words of a found name ("Ana de la Cruz" -> Ana, Cruz)."""
    return [t.group() for t in _tokens(name)]
