"""Deployments: real subprocesses (the model server, or small stand-ins that crash, hang or ignore SIGTERM)
and real HTTP; orphans are looked for in ``/proc``."""

from __future__ import annotations

import atexit
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from dataflywheel.models.client import SyncOpenAIClient
from dataflywheel.models.deployments import Deployment, DeploymentError, DeploymentManager, terminate_group
from dataflywheel.models.registry import ModelSpec
from dataflywheel.models.types import ChatRequest, SamplingParams
from dataflywheel.settings import Settings
from tests.serving import ServerThread, group_members, make_lora_adapter, pid_alive, wait_gone

# A stand-in server: answers GET /v1/models on the --port it is given (no torch: starts in ~0.1 s).
FAKE_SERVER = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port = int(sys.argv[sys.argv.index("--port") + 1])
    name = sys.argv[sys.argv.index("--served-model-name") + 1]
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            data = json.dumps({"object": "list", "data": [{"id": name, "object": "model"}]}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers()
            self.wfile.write(data)
    print("fake server up", flush=True)
    HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


@pytest.fixture
def home_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


@pytest.fixture
def manager(home_settings: Settings) -> Iterator[DeploymentManager]:
    with DeploymentManager(home_settings, ready_timeout=60) as m:
        yield m


def local_spec(name: str, source: str) -> ModelSpec:
    return ModelSpec(name=name, engine="local", source=source)


# local servers that fail ------------------------------------------------------------------------------


def test_a_server_that_crashes_on_start_gives_its_log_tail_and_leaves_no_process(
    manager: DeploymentManager, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(DeploymentError) as info:
        manager.deploy(local_spec("broken", str(missing)))
    err = info.value
    assert "exited with code 1 before it was ready" in str(err)
    assert "does not exist" in err.log_tail and str(missing) in err.log_tail
    assert err.log_tail in str(err)
    assert err.log_path is not None and err.log_path.parent == manager.log_dir
    assert err.log_path.name.startswith("broken-") and err.log_path.suffix == ".log"
    assert err.pid is not None and not pid_alive(err.pid) and group_members(err.pid) == []
    assert manager.deployments == []


def test_a_server_that_never_gets_ready_is_killed(home_settings: Settings) -> None:
    hang = [sys.executable, "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"]
    with (
        DeploymentManager(home_settings, command=hang) as manager,
        pytest.raises(DeploymentError, match=r"did not answer .* within 1 s") as info,
    ):
        manager.deploy(local_spec("hangs", "whatever"), ready_timeout=1)
    pid = info.value.pid
    assert pid is not None
    assert wait_gone(pid), group_members(pid)  # the child's own child too


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline() == b"up\n"  # SIGTERM is ignored from now on
    deployment = Deployment(name="stubborn", base_url="http://127.0.0.1:9/v1", model="m", process=process)
    deployment.stop(timeout=0.5)
    assert process.returncode == -9
    assert not pid_alive(process.pid) and group_members(process.pid) == []
    deployment.stop()  # idempotent
    assert not deployment.running


def test_terminate_group_on_a_finished_process_is_harmless() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    process.wait()
    terminate_group(process, timeout=1)


# the manager ------------------------------------------------------------------------------------------


def test_the_manager_passes_adapters_and_stops_everything_on_exit(home_settings: Settings, tmp_path: Path) -> None:
    fake = [sys.executable, "-c", FAKE_SERVER]
    adapter = tmp_path / "adapters" / "v1"
    with DeploymentManager(home_settings, command=fake, ready_timeout=20) as manager:
        a = manager.deploy(local_spec("org/model-a", "src-a"), {"v1": adapter})
        b = manager.deploy(local_spec("model-b", "src-b"))
        assert a.base_url != b.base_url and a.base_url.startswith("http://127.0.0.1:")
        assert (a.model, a.adapters, a.local) == ("org/model-a", ("v1",), True)
        assert manager.deployments == [a, b]
        assert a.log_path is not None and a.log_path.name.startswith("org_model-a-")
        log = a.log_path.read_text()
        assert f"--adapter v1={adapter.resolve()}" in log and "--model src-a" in log and "fake server up" in log
        assert a.running and b.running
        pids = [a.pid, b.pid]
    assert not a.running and not b.running
    assert all(p is not None and wait_gone(p) for p in pids)
    atexit.unregister(manager.stop_all)  # (already done by close; harmless twice)


# a real deployment ------------------------------------------------------------------------------------


def test_a_real_deployment_answers_and_stop_kills_it(
    home_settings: Settings, tiny_model_dir: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    adapter = make_lora_adapter(tiny_model_dir, tmp_path_factory.getbasetemp() / "tiny-lora")
    with DeploymentManager(home_settings, extra_args=["--threads", "1"], ready_timeout=120) as manager:
        deployment = manager.deploy(local_spec("tiny", tiny_model_dir), {"tiny-lora": adapter})
        assert deployment.local and deployment.running
        with SyncOpenAIClient(deployment.client(timeout=60)) as client:
            assert client.models() == ["tiny", "tiny-lora"]
            request = ChatRequest(
                messages=[{"role": "user", "content": "hello"}], sampling=SamplingParams(max_tokens=6)
            )
            base = client.chat(request, deployment.model)
            lora = client.chat(
                ChatRequest(messages=request.messages, sampling=request.sampling, adapter="tiny-lora"), ""
            )
        assert base.usage.completion_tokens > 0 and lora.usage.completion_tokens > 0
        assert (
            deployment.log_path is not None and "serving tiny, tiny-lora on http://127.0.0.1:" in deployment.log_tail()
        )
        pid = deployment.pid
        assert pid is not None
        deployment.stop()
        assert not deployment.running
        assert wait_gone(pid, timeout=5)
        deployment.stop()  # idempotent
    assert manager.deployments == []


# remote endpoints -------------------------------------------------------------------------------------


@pytest.fixture
def remote() -> Iterator[ServerThread]:
    app = FastAPI()

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        if request.headers.get("authorization") != "Bearer sk-remote":
            return JSONResponse({"error": {"message": "invalid api key", "type": "auth"}}, status_code=401)
        return {"object": "list", "data": [{"id": "served-model", "object": "model"}]}

    with ServerThread(app) as server:
        yield server


def test_a_remote_candidate_is_checked_and_pointed_at(
    manager: DeploymentManager, remote: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMOTE_KEY", "sk-remote")
    spec = ModelSpec(
        name="remote",
        engine="openai",
        source=None,
        base_url=remote.base_url + "/",
        model_id="served-model",
        api_key_env="REMOTE_KEY",
    )
    deployment = manager.deploy(spec)
    assert (deployment.base_url, deployment.model, deployment.local) == (remote.base_url, "served-model", False)
    with SyncOpenAIClient(deployment.client()) as client:
        assert client.models() == ["served-model"]
    deployment.stop()  # nothing to stop; harmless


def test_a_remote_candidate_that_refuses_us_or_is_down(
    manager: DeploymentManager, remote: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = ModelSpec(name="remote", engine="openai", source=None, base_url=remote.base_url, api_key_env="REMOTE_KEY")
    with pytest.raises(DeploymentError, match="REMOTE_KEY"):
        manager.deploy(spec)
    monkeypatch.setenv("REMOTE_KEY", "wrong")
    with pytest.raises(DeploymentError, match="HTTP 401: invalid api key"):
        manager.deploy(spec)
    down = ModelSpec(name="down", engine="openai", source=None, base_url="http://127.0.0.1:9/v1")
    with pytest.raises(DeploymentError, match=re.escape("not ready: GET http://127.0.0.1:9/v1/models")):
        manager.deploy(down, ready_timeout=0.5)
    with pytest.raises(DeploymentError, match="adapters can only be served locally"):
        manager.deploy(down, {"a": Path("x")})


# the vLLM path (a CUDA GPU and vllm are needed to run it; here only its command and the choice are checked)


def test_vllm_command_serves_adapters_by_alias(tmp_path: Path) -> None:
    from dataflywheel.models.deployments import vllm_argv

    argv = vllm_argv("/models/smol", "smol", "127.0.0.1", 8011, {"mine": tmp_path}, ["--dtype", "bfloat16"])
    assert argv[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--model") + 1] == "/models/smol" and argv[argv.index("--port") + 1] == "8011"
    assert "--enable-lora" in argv and f"mine={tmp_path.resolve()}" in argv and argv[-2:] == ["--dtype", "bfloat16"]
    assert "--enable-lora" not in vllm_argv("/m", "m", "h", 1, {})


def test_backend_choice(home_settings: Settings) -> None:
    import importlib.util

    from dataflywheel.errors import DependencyMissingError
    from dataflywheel.models.deployments import serving_backend

    has_vllm = importlib.util.find_spec("vllm") is not None
    if not has_vllm:
        assert serving_backend(home_settings) == "flywheel"  # auto without vllm
        forced = home_settings.model_copy(
            update={"serving": home_settings.serving.model_copy(update={"backend": "vllm"})}
        )
        with pytest.raises(DependencyMissingError, match="vllm is not installed"):
            serving_backend(forced)
    flywheel = home_settings.model_copy(
        update={"serving": home_settings.serving.model_copy(update={"backend": "flywheel"})}
    )
    assert serving_backend(flywheel) == "flywheel"
