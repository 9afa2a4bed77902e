"""The drift metrics as pure functions, and the report :func:`compare` makes of them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataflywheel.drift import DriftStatus, SchemaChangeKind
from dataflywheel.drift.check import compare
from dataflywheel.drift.metrics import (
    centroid_distance,
    class_shifts,
    jensen_shannon,
    schema_changes,
    tool_fingerprints,
    total_variation,
)
from dataflywheel.drift.samples import Reference, Sample
from dataflywheel.settings.schedule import DriftMetric, DriftSettings
from tests.factories import TOOLS

counts = st.builds(
    lambda first, rest: {**rest, **first},
    st.dictionaries(st.sampled_from("ABCDEFG"), st.integers(1, 1000), min_size=1, max_size=1),
    st.dictionaries(st.sampled_from("ABCDEFG"), st.integers(0, 1000)),
)


def test_total_variation_known_values() -> None:
    assert total_variation({"A": 50, "B": 50}, {"A": 5, "B": 5}) == 0.0  # the same shares
    assert total_variation({"A": 10}, {"B": 3}) == 1.0  # nothing in common
    assert total_variation({"A": 80, "B": 20}, {"A": 50, "B": 50}) == pytest.approx(0.3)
    assert total_variation({"A": 1}, {"A": 1, "C": 1}) == pytest.approx(0.5)  # a new class takes half


def test_jensen_shannon_known_values() -> None:
    assert jensen_shannon({"A": 3, "B": 1}, {"A": 30, "B": 10}) == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon({"A": 1}, {"B": 1}) == pytest.approx(1.0)
    # p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25))
    assert jensen_shannon({"A": 2}, {"A": 1, "B": 1}) == pytest.approx(expected)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a busy 2-core machine
@given(counts, counts)
def test_distances_are_symmetric_bounded_and_zero_on_themselves(p: dict[str, int], q: dict[str, int]) -> None:
    for metric in (total_variation, jensen_shannon):
        d = metric(p, q)
        assert 0.0 <= d <= 1.0
        assert d == pytest.approx(metric(q, p), abs=1e-12)
        assert metric(p, p) == pytest.approx(0.0, abs=1e-12)
    # JS (bits) is at most TV (Lin 1991), so a TV threshold is the stricter of the two
    assert jensen_shannon(p, q) <= total_variation(p, q) + 1e-12


def test_empty_or_negative_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="current: no records"):
        total_variation({"A": 1}, {"A": 0})
    with pytest.raises(ValueError, match="reference: negative count for class 'A'"):
        jensen_shannon({"A": -1, "B": 3}, {"A": 1})


def test_class_shifts_list_every_class_largest_change_first() -> None:
    shifts = class_shifts({"A": 80, "B": 20}, {"A": 40, "B": 20, "C": 40})
    assert [s.tool for s in shifts] == ["A", "C", "B"]
    a = shifts[0]
    assert (a.reference_count, a.current_count, a.reference_share, a.current_share) == (80, 40, 0.8, 0.4)
    assert shifts[1].reference_count == 0


def test_tool_fingerprints_change_with_the_schema_only() -> None:
    base = tool_fingerprints(TOOLS)
    assert set(base) == {"Alpha", "Beta", "Gamma"} and all(len(h) == 16 for h in base.values())
    reordered = [{"type": "function", "function": dict(reversed(list(t["function"].items())))} for t in TOOLS]
    assert tool_fingerprints(reordered) == base  # key order does not matter
    changed = [dict(t, function={**t["function"], "parameters": {"type": "object"}}) for t in TOOLS[:1]]
    assert tool_fingerprints(changed)["Alpha"] != base["Alpha"]
    assert tool_fingerprints([{"function": {"description": "no name"}}, "junk"]) == {}
    assert tool_fingerprints(None) == {}


def test_schema_changes_name_new_and_changed_tools_with_counts() -> None:
    reference = {"Alpha": {"h1": 10}, "Beta": {"h2": 10}}
    current = {"Alpha": {"h1": 5, "h9": 3}, "Beta": {"h2": 7}, "Delta": {"h4": 2}}
    changes = schema_changes(reference, current)
    assert [(c.tool, c.kind, c.records, c.schema_hashes, c.reference_hashes) for c in changes] == [
        ("Alpha", SchemaChangeKind.CHANGED, 3, ("h9",), ("h1",)),
        ("Delta", SchemaChangeKind.NEW, 2, ("h4",), ()),
    ]
    assert schema_changes(reference, {"Alpha": {"h1": 1}}) == []


def test_centroid_distance() -> None:
    same = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert centroid_distance(same, same[::-1]) == pytest.approx(0.0)
    assert centroid_distance([[1.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(1.0)
    assert centroid_distance([[1.0, 0.0]], [[-1.0, 0.0]]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="different sizes"):
        centroid_distance([[1.0, 0.0]], [[1.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="zero vector"):
        centroid_distance([[1.0, 0.0], [-1.0, 0.0]], [[1.0, 0.0]])


def _sample(classes: dict[str, int], schemas: dict[str, dict[str, int]] | None = None, queries: int = 0) -> Sample:
    return Sample(
        records=sum(classes.values()),
        classes=classes,
        schemas=schemas or {},
        queries=tuple(f"q{i}" for i in range(queries)),
    )


REF = Reference(job_id="j" * 32, build_id="b1", newest_timestamp=1000.0, sample=_sample({"A": 60, "B": 40}, queries=3))
SETTINGS = DriftSettings(min_records=10, embed=False)


def test_compare_stable_below_every_threshold() -> None:
    report = compare("wl", "c", REF, _sample({"A": 55, "B": 45}), SETTINGS)
    assert report.status is DriftStatus.STABLE and not report.drifted and report.reasons == ()
    assert report.tool_classes is not None and report.tool_classes.distance == pytest.approx(0.05)
    assert report.centroid is not None and report.centroid.skipped == "drift.embed is false"
    assert (report.reference_records, report.current_records, report.since_timestamp) == (100, 100, 1000.0)


def test_compare_drifts_on_a_class_shift_over_the_threshold() -> None:
    report = compare("wl", "c", REF, _sample({"A": 20, "B": 30, "C": 50}), SETTINGS)
    assert report.status is DriftStatus.DRIFTED
    assert report.reasons == ("tool classes: total_variation 0.500 >= 0.2",)
    js = compare(
        "wl",
        "c",
        REF,
        _sample({"A": 20, "B": 30, "C": 50}),
        SETTINGS.model_copy(update={"tool_class_metric": DriftMetric.JENSEN_SHANNON, "tool_class_threshold": 0.9}),
    )
    assert not js.drifted and js.tool_classes is not None and js.tool_classes.metric == "jensen_shannon"


def test_compare_drifts_on_a_new_tool_schema_unless_told_not_to() -> None:
    current = _sample({"A": 60, "B": 40}, schemas={"Zeta": {"h": 12}})
    report = compare("wl", "c", REF, current, SETTINGS)
    assert report.drifted and report.reasons == ("tool schemas: Zeta (new, 12 records)",)
    ignored = compare("wl", "c", REF, current, SETTINGS.model_copy(update={"schema_changes": False}))
    assert not ignored.drifted and len(ignored.schema_changes) == 1  # still reported


def test_compare_drifts_on_the_query_centroid() -> None:
    def embed(texts: object) -> np.ndarray:
        rows = list(texts)  # type: ignore[call-overload]
        axis = [1.0, 0.0] if rows[0] == "q0" and len(rows) == 3 else [0.0, 1.0]
        return np.array([axis] * len(rows), dtype=np.float32)

    settings = SETTINGS.model_copy(update={"embed": True})
    report = compare("wl", "c", REF, _sample({"A": 60, "B": 40}, queries=20), settings, embed=embed)
    assert report.centroid is not None and report.centroid.distance == pytest.approx(1.0)
    assert report.reasons == ("query embeddings: centroid distance 1.000 >= 0.1",)
    skipped = compare("wl", "c", REF, _sample({"A": 60, "B": 40}, queries=20), settings)
    assert skipped.centroid is not None and skipped.centroid.skipped == "no embedder" and not skipped.drifted


def test_too_few_new_records_is_no_drift() -> None:
    report = compare("wl", "c", REF, _sample({"C": 9}), SETTINGS)
    assert report.status is DriftStatus.TOO_FEW_RECORDS and not report.drifted
    assert report.reasons == ("9 new record(s), fewer than drift.min_records (10)",)
