"""``flywheel report JOB_ID -o report.html``: one self-contained file with the page's sections and numbers,
referring to no other host."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataflywheel.cli.main import app
from dataflywheel.jobs import JobStore
from tests.helpers.dashboard_job import FinishedJob
from tests.web.markup import find, words

runner = CliRunner()
# Anything that would load something: an attribute naming a URL, a CSS url(), an @import.
EXTERNAL = re.compile(r"""(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:|//)|url\(|@import""", re.I)


def _report(finished: FinishedJob, job_id: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FLYWHEEL_HOME", str(finished.settings.home))
    result = runner.invoke(app, ["report", job_id, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in " ".join(result.output.split())
    return out.read_text(encoding="utf-8")


def test_the_report_is_one_offline_file_with_the_jobs_numbers(
    finished: FinishedJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    html = _report(finished, finished.job_id, tmp_path / "out" / "report.html", monkeypatch)
    assert EXTERNAL.search(html) is None, EXTERNAL.search(html)
    assert "<script" not in html and "<link" not in html and "<style>" in html
    store = JobStore.from_settings(finished.settings)
    try:
        result = store.get_job(finished.job_id).result
    finally:
        store.close()
    assert result is not None
    [rec] = find(html, "section", id="recommendation")
    assert result["recommendation"]["sentence"] in words(rec.text)
    drawn = {
        (g.attrs["data-candidate"], g.attrs["data-eval-type"]): float(g.attrs["data-mean"])
        for g in find(html, "g", class_="point")
    }
    stored = {
        (c, t): ev["metrics"]["function_name_accuracy"]["mean"]
        for c, evs in result["candidates"].items()
        for t, ev in evs.items()
    }
    assert drawn == stored
    confusions = find(html, "details", class_="confusion")
    assert len(confusions) == 9 and all("open" in d.attrs for d in confusions)  # a report is read as it is
    assert len(find(html, "figure", class_="training")) == 3
    assert find(html, "section", id="funnel") and find(html, "svg", class_="funnel")


def test_a_report_of_an_unknown_job_is_one_clear_error(
    finished: FinishedJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_HOME", str(finished.settings.home))
    result = runner.invoke(app, ["report", "0" * 32, "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "not found" in result.output and not (tmp_path / "r.html").exists()
