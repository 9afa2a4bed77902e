"""Every error the project defines leaves the API as a 4xx or a 503 with its reason, never a 500."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import dataflywheel
from dataflywheel.api import create_api
from dataflywheel.api.errors import STATUS, status_for
from dataflywheel.errors import FlywheelError
from dataflywheel.evaluation.runner import EvalError
from dataflywheel.jobs.errors import JobStateError, StaleAttemptError
from dataflywheel.models.deployments import DeploymentError
from dataflywheel.models.endpoint import EndpointError
from dataflywheel.settings import Settings
from dataflywheel.training.adapters import AdapterNotFoundError
from dataflywheel.training.trainer import TrainingError


def every_module() -> list[str]:
    """Every module of the package (``__main__`` aside, which runs the CLI)."""
    return [
        m.name for m in pkgutil.walk_packages(dataflywheel.__path__, "dataflywheel.") if not m.name.endswith("__main__")
    ]


def subclasses(cls: type[FlywheelError]) -> Iterator[type[FlywheelError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)


def test_every_flywheel_error_of_every_module_has_a_4xx_or_503_status() -> None:
    for name in every_module():
        importlib.import_module(name)
    found = set(subclasses(FlywheelError))
    assert len(found) >= 35  # the walk really imported the package

    statuses = {f"{cls.__module__}.{cls.__qualname__}": status_for(cls) for cls in found}
    assert [name for name, status in statuses.items() if status is None] == []
    assert {name: s for name, s in statuses.items() if s is not None and not (400 <= s < 500 or s == 503)} == {}
    assert FlywheelError not in STATUS  # a class must be placed on purpose, not caught by the root


def test_a_new_subclass_takes_its_parents_status_without_an_entry() -> None:
    class LeaseLost(JobStateError):
        pass

    class QuotaExceeded(EndpointError):
        pass

    assert LeaseLost not in STATUS and QuotaExceeded not in STATUS
    assert status_for(LeaseLost) == 409 and status_for(QuotaExceeded) == 503
    assert status_for(StaleAttemptError) == 409 and StaleAttemptError not in STATUS  # one entry for the group


@pytest.fixture
def app_raising(settings: Settings) -> Iterator[tuple[FastAPI, TestClient]]:
    """The real app with one more route, which raises the error the test hands it."""
    app = create_api(settings, start_jobs=False, recover=False)
    with TestClient(app) as client:
        yield app, client


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (EvalError("base-eval of cand-a: 12 of 20 requests failed"), 503),
        (TrainingError("cand-a does not load: no config.json"), 503),
        (DeploymentError("cand-a exited before it was ready"), 503),
        (EndpointError("judge at http://127.0.0.1:9/v1 refused the connection", url="http://127.0.0.1:9/v1"), 503),
        (AdapterNotFoundError("no adapter named mine"), 404),
    ],
)
def test_errors_once_unmapped_answer_their_status_and_reason(
    app_raising: tuple[FastAPI, TestClient], error: FlywheelError, status: int
) -> None:
    app, client = app_raising

    def fail() -> None:
        raise error

    app.add_api_route("/api/test-raise", fail, methods=["GET"])
    r = client.get("/api/test-raise")
    assert r.status_code == status, r.text
    assert r.json() == {"detail": str(error)}
