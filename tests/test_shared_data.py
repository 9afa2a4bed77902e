"""The shared sample data is found relative to the repository root, and its absence is never silent."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.conftest as shared
from tests.conftest import REPO_ROOT, shared_data


def test_the_aiva_sample_is_found_relative_to_the_repository_root(aiva_sample: Path) -> None:
    assert aiva_sample in (
        REPO_ROOT.parent / "shared" / "data" / "aiva-sample-25.jsonl",
        REPO_ROOT / "shared" / "data" / "aiva-sample-25.jsonl",
    )
    assert len([line for line in aiva_sample.read_text().splitlines() if line.strip()]) == 25


def test_missing_shared_data_fails_in_ci_and_skips_with_where_it_looked_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shared, "REQUIRE_SERVICES", True)
    with pytest.raises(pytest.fail.Exception, match="FLYWHEEL_REQUIRE_SERVICES=1"):
        shared_data("no-such-sample.jsonl")
    monkeypatch.setattr(shared, "REQUIRE_SERVICES", False)
    with pytest.raises(pytest.skip.Exception, match=str(REPO_ROOT.parent / "shared" / "data" / "no-such-sample")):
        shared_data("no-such-sample.jsonl")
