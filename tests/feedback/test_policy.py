"""The normalizer decides on finding codes, never on their wording: a policy over the reader's findings."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from dataflywheel.feedback import NormalizeStatus, RejectReason, normalize_output
from dataflywheel.feedback import policy as policy_module
from dataflywheel.feedback.policy import DEFERRED, RULES
from dataflywheel.models.toolparse import CallForm, Finding, FindingCode, ParsedCall, ParsedOutput
from dataflywheel.models.toolparse.arguments import ArgumentsRead
from tests.feedback.test_normalize import ALL_TOOLS, CASES, TALK, TALK_ARGS, _run

F = FindingCode
SRC = Path(__file__).resolve().parents[2] / "src" / "dataflywheel"


def test_every_finding_code_has_exactly_one_meaning() -> None:
    assert set(RULES) | set(DEFERRED) == set(FindingCode)
    assert not set(RULES) & set(DEFERRED)


def _verdict(result: Any) -> tuple[Any, ...]:
    return (result.status, result.reason, result.repair_codes, result.calls, [w.split(":")[0] for w in result.warnings])


def test_rewording_every_finding_changes_no_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    before = {case.id: _verdict(_run(case)) for case in CASES}
    read_tool_calls, read_arguments = policy_module.read_tool_calls, policy_module.read_arguments

    def reword(findings: list[Finding]) -> list[Finding]:
        return [dataclasses.replace(f, detail=f"reworded: {f.code.value} ({i})") for i, f in enumerate(findings)]

    def reworded_text(*args: Any, **kwargs: Any) -> ParsedOutput:
        out = read_tool_calls(*args, **kwargs)
        return dataclasses.replace(out, findings=reword(out.findings), problems=["reworded"])

    def reworded_arguments(*args: Any, **kwargs: Any) -> ArgumentsRead:
        got = read_arguments(*args, **kwargs)
        return ArgumentsRead(got.value, reword(got.findings))

    monkeypatch.setattr(policy_module, "read_tool_calls", reworded_text)
    monkeypatch.setattr(policy_module, "read_arguments", reworded_arguments)
    after = {case.id: _verdict(_run(case)) for case in CASES}
    assert after == before
    rejected = normalize_output('<tool_call>{"name": "ToReturnsDesk", "arguments": "no"}</tool_call>', ALL_TOOLS)
    assert rejected.detail is not None and rejected.detail.startswith("reworded: invalid_arguments")


def _reading(monkeypatch: pytest.MonkeyPatch, *findings: Finding) -> None:
    """Make the reader find one call to HandleSmallTalk, and ``findings``."""
    call = ParsedCall(TALK, dict(TALK_ARGS), "x", CallForm.TOOL_CALL, (0, 1))
    out = ParsedOutput.of(None, [call], list(findings))
    monkeypatch.setattr(policy_module, "read_tool_calls", lambda *a, **k: out)


@pytest.mark.parametrize(
    ("code", "status", "reason", "repairs"),
    [
        (F.IGNORED_TEXT, NormalizeStatus.REPAIRED, None, ["ignored_text"]),
        (F.STRAY_COMMA, NormalizeStatus.REPAIRED, None, ["trailing_comma"]),
        (F.FENCED_ARGUMENTS, NormalizeStatus.REPAIRED, None, ["code_fence"]),
        (F.TRUNCATED, NormalizeStatus.REPAIRED, None, ["closed_brackets"]),
        (F.UNKNOWN_TOOL, NormalizeStatus.OK, None, []),
        (F.SCHEMA_WITHOUT_VALUES, NormalizeStatus.OK, None, []),  # another call was read
        (F.CUT_OFF, NormalizeStatus.REJECTED, RejectReason.TRUNCATED, []),
        (F.UNREADABLE_BLOCK, NormalizeStatus.REJECTED, RejectReason.UNPARSEABLE, []),
        (F.PASTED_AMBIGUOUS, NormalizeStatus.REJECTED, RejectReason.SCHEMA_ECHO, []),
    ],
)
def test_a_code_alone_decides(
    monkeypatch: pytest.MonkeyPatch, code: FindingCode, status: NormalizeStatus, reason: Any, repairs: list[str]
) -> None:
    _reading(monkeypatch, Finding(code, "any words at all", (0, 0)))
    result = normalize_output("anything", ALL_TOOLS)
    assert (result.status, result.reason, result.repair_codes) == (status, reason, repairs)
    if result.reason is not None:
        assert result.detail == "any words at all"


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dataflywheel")
        for alias in node.names
        if alias.name.startswith("_")
    ]


@pytest.mark.parametrize("package", ["feedback", "models/toolparse", "evaluation"])
def test_no_module_imports_a_private_name(package: str) -> None:
    found = {str(p.relative_to(SRC)): _private_imports(p) for p in sorted((SRC / package).glob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}
