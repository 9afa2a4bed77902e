"""The fault suite's world: a home with synthetic logs, a cheap remote candidate (:mod:`.fake_endpoint`),
settings shared by this process and the ones it starts and kills (``flywheel serve``, ``flywheel worker``,
``redis-server``), and the tally printed at the end of the run.

Each test injects real faults (SIGKILL, a server restart, terminated database connections, a full
filesystem) and ends by checking the job ended (completed, or failed/crashed with a reason: never stuck) and
that nothing was lost or duplicated (:func:`count_items`), then records its outcome in the tally.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
import yaml

from dataflywheel.ingest.jsonl import load_file
from dataflywheel.jobs import JobRecord, JobStatus, JobStore
from dataflywheel.logstore import open_log_store
from dataflywheel.settings import Settings, load_settings
from dataflywheel.synth.generator import SynthConfig, write_jsonl
from tests.faults.fake_endpoint import FakeEndpoint
from tests.serving import wait_gone

WORKLOAD, CLIENT = "primary_assistant", "northwind-1"
CANDIDATE = "fake-remote"
RECORDS = 80
EVAL_SIZE = 8
STALE_AFTER_S = 3.0
HEARTBEAT_S = 0.5
T = TypeVar("T")


@dataclass
class Tally:
    """What the suite did, printed at the end of the run."""

    faults: dict[str, int] = field(default_factory=dict)
    completed: int = 0
    ended_with_reason: list[str] = field(default_factory=list)
    stuck: int = 0
    lost: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)

    def fault(self, kind: str, n: int = 1) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + n

    def job(self, job: JobRecord, items: Items | None = None) -> None:
        if job.status == JobStatus.COMPLETED:
            self.completed += 1
        elif job.status.terminal and job.error:
            self.ended_with_reason.append(f"{job.status.value}: {job.error[:90]}")
        else:
            self.stuck += 1
        if items is not None:
            self.lost += items.lost
            self.duplicated += items.duplicated


TALLY = Tally()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY.faults:
        return
    tr = terminalreporter
    tr.section("fault suite")
    tr.write_line(
        f"faults injected: {sum(TALLY.faults.values())} ({', '.join(f'{k} {v}' for k, v in TALLY.faults.items())})"
    )
    tr.write_line(f"jobs completed: {TALLY.completed}")
    tr.write_line(f"jobs failed/crashed with a reason: {len(TALLY.ended_with_reason)}")
    for line in TALLY.ended_with_reason:
        tr.write_line(f"  {line}")
    tr.write_line(f"jobs stuck: {TALLY.stuck}")
    tr.write_line(f"items lost: {TALLY.lost}, duplicated: {TALLY.duplicated}")
    for note in TALLY.notes:
        tr.write_line(f"note: {note}")


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


@pytest.fixture(scope="session")
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint().start()
    yield fake
    fake.stop()


@dataclass
class FaultEnv:
    """A home, its settings file and the environment for processes that share it."""

    home: Path
    config: Path
    env: dict[str, str]
    logs: list[Path] = field(default_factory=list)

    def settings(self) -> Settings:
        return load_settings(self.config, home=self.home)

    def store(self) -> JobStore:
        return JobStore.from_settings(self.settings())

    def log_tail(self, n: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-n:]}" for p in self.logs if p.is_file())


@pytest.fixture(scope="session")
def logs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("faults-template")
    write_jsonl(SynthConfig(records=RECORDS, seed=2), home / "traffic.jsonl")
    with open_log_store(load_settings(home=home)) as store:
        assert load_file(store, home / "traffic.jsonl").store.added == RECORDS
    return home


def make_env(
    tmp_path: Path, logs_template: Path, endpoint: FakeEndpoint, *, executor: dict[str, Any] | None = None, **more: Any
) -> FaultEnv:
    """A fresh home (the logs copied in) and a settings file for every process of the test."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(logs_template, home)
    config = {
        "curation_workers": 0,
        "data_split": {"eval_size": EVAL_SIZE, "limit": 40, "min_total_records": 20},
        "executor": {
            "eval_max_tokens": 24,
            "eval_concurrency": 1,
            "heartbeat_s": HEARTBEAT_S,
            "stale_after_s": STALE_AFTER_S,
            "stage_attempts": 3,
            **(executor or {}),
        },
        "icl": {"embedder": {"kind": "openai", "base_url": endpoint.base_url, "model": "fake-embed"}},
        "candidates": [
            {
                "name": CANDIDATE,
                "engine": "openai",
                "base_url": endpoint.base_url,
                "model_id": "fake",
                "customizable": False,
            }
        ],
        **more,
    }
    path = tmp_path / "flywheel.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_") or k == "FLYWHEEL_REQUIRE_SERVICES"}
    env.update({"FLYWHEEL_CONFIG": str(path), "FLYWHEEL_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    return FaultEnv(home, path, env)


@pytest.fixture
def fault_env(tmp_path: Path, logs_template: Path, endpoint: FakeEndpoint) -> FaultEnv:
    return make_env(tmp_path, logs_template, endpoint)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(env: FaultEnv, argv: list[str], name: str) -> subprocess.Popen[bytes]:
    """A ``flywheel`` command in a process group of its own, logging to the home."""
    log = env.home / f"{name}-{len(env.logs)}.log"
    env.logs.append(log)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dataflywheel.cli.main", *argv],
            env=env.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process and its group (its stage children too), as a crash or an OOM kill of the service."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_gone(proc.pid, timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            kill9(proc)


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stage_running(store: JobStore, job_id: str, key: str, attempt: int = 1) -> bool:
    stage = store.get_stage(job_id, key)
    return stage is not None and stage.status.value == "running" and stage.attempts >= attempt


def wait_ended(store: JobStore, job_id: str, timeout: float) -> JobRecord:
    """The job once it has ended; an AssertionError (a stuck job) after ``timeout``."""
    return wait_for(lambda: (j := store.get_job(job_id)).status.terminal and j, timeout, f"job {job_id} to end", 0.2)


@dataclass(frozen=True)
class Items:
    """What a job made, counted from the store and the files, and what is missing or doubled."""

    log_records: int
    datasets: int
    dataset_rows: int
    samples: int
    adapters: int
    lost: int
    duplicated: int


def count_items(env: FaultEnv, store: JobStore, job_id: str, *, evals_expected: bool = True) -> Items:
    """Count a job's items and compare them with what must be: the logs all there, each dataset file holding
    the rows the store says, every completed eval with exactly one sample per eval record, no adapter (the
    candidate is not customizable)."""
    settings = env.settings()
    with open_log_store(settings) as logs:
        log_records = logs.count(WORKLOAD, CLIENT)
    detail = store.job_detail(job_id)
    lost = max(0, RECORDS - log_records)
    duplicated = max(0, log_records - RECORDS)
    rows = 0
    for d in detail.datasets:
        assert d.path is not None
        n = sum(1 for line in Path(d.path).read_bytes().splitlines() if line.strip())
        rows += n
        lost += max(0, d.num_records - n)
        duplicated += max(0, n - d.num_records)
    samples = 0
    for run in detail.candidates:
        for ev in run.evaluations:
            if ev.status.value != "completed":
                continue
            path = Path(ev.artifact_path or "") / "samples.jsonl"
            ids = [orjson.loads(line).get("record_id") for line in path.read_bytes().splitlines() if line.strip()]
            samples += len(ids)
            lost += max(0, EVAL_SIZE - len(set(ids)))
            duplicated += len(ids) - len(set(ids))
    if evals_expected:
        lost += 0 if samples else EVAL_SIZE
    adapters_dir = settings.home / "adapters"
    adapters = len(list(adapters_dir.iterdir())) if adapters_dir.is_dir() else 0
    duplicated += adapters  # nothing customizable: any adapter is one too many
    return Items(log_records, len(detail.datasets), rows, samples, adapters, lost, duplicated)
