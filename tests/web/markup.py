"""Reading a rendered page back in tests: elements by tag and attributes, with their text."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""
    _depth: int = field(default=0, repr=False)


class _Finder(HTMLParser):
    VOID = frozenset({"br", "img", "input", "meta", "link", "hr", "col", "source", "path", "rect", "circle", "line"})

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        super().__init__(convert_charrefs=True)
        self.tag, self.want = tag, attrs
        self.found: list[Element] = []
        self.open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        for el in self.open:
            if el.tag == tag:
                el._depth += 1
        if tag == self.tag and all(
            (k in values) if v is None else values.get(k) == v or v in values.get(k, "").split()
            for k, v in self.want.items()
        ):
            el = Element(tag, values)
            self.found.append(el)
            if tag not in self.VOID:
                self.open.append(el)

    def handle_endtag(self, tag: str) -> None:
        for el in list(self.open):
            if el.tag == tag:
                if el._depth:
                    el._depth -= 1
                else:
                    self.open.remove(el)

    def handle_data(self, data: str) -> None:
        for el in self.open:
            el.text += data


def find(html: str, tag: str, **attrs: str | None) -> list[Element]:
    """Elements ``tag`` whose attributes match (``data_x="1"`` for ``data-x``; a class matches one of the
    element's classes; None: the attribute is present), with their text."""
    finder = _Finder(tag, {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()})
    finder.feed(html)
    return finder.found


def words(text: str) -> str:
    return " ".join(text.split())
