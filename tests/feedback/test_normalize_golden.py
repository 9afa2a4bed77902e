"""The normalizer's verdicts on the fixed messy-output corpus are exactly those of the golden file (written
before the tool-call reader returned findings): reading outputs differently changes training data, so any
change must be deliberate (rewrite the file with ``python -m tests.feedback.verdict_corpus``)."""

from __future__ import annotations

import json

from tests.feedback.verdict_corpus import GOLDEN, corpus, golden_line


def test_verdicts_on_the_corpus_match_the_golden_file() -> None:
    expected = [json.loads(line) for line in GOLDEN.read_text().splitlines() if line.strip()]
    items = corpus()
    assert [e["id"] for e in expected] == [i.id for i in items]
    differences = []
    for want, item in zip(expected, items, strict=True):
        got = golden_line(item)
        if got != want:
            differences.append((item.id, want, got))
    assert not differences, f"{len(differences)} verdicts changed, first: {differences[:5]}"
