"""``flywheel serve-model``: a local model (and its LoRA adapters) behind an OpenAI-compatible server."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from dataflywheel.cli.common import console, handle_errors, serve_extra, state

ADAPTER_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@:-]*$")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def parse_adapters(values: list[str] | None) -> dict[str, Path]:
    """``ALIAS=PATH`` options into ``{alias: path}``; bad syntax or a repeated alias is a BadParameter."""
    adapters: dict[str, Path] = {}
    for value in values or []:
        alias, sep, path = value.partition("=")
        alias, path = alias.strip(), path.strip()
        if not sep or not alias or not path:
            raise typer.BadParameter(
                f"{value!r}: expected ALIAS=PATH, e.g. support-v1=./adapters/v1", param_hint="--adapter"
            )
        if not ADAPTER_ALIAS.match(alias):
            raise typer.BadParameter(
                f"{alias!r}: an adapter alias starts with a letter or digit and holds only letters, digits "
                "and . _ / @ : -",
                param_hint="--adapter",
            )
        if alias in adapters:
            raise typer.BadParameter(f"adapter alias {alias!r} is given twice", param_hint="--adapter")
        adapters[alias] = Path(path).expanduser()
    return adapters


def _exit_with(pid: int) -> None:
    """Exit as soon as the parent process ``pid`` is gone (checked twice a second, in a daemon thread): a
    killed parent leaves this process re-parented, or ``pid`` no longer exists."""
    import os
    import threading
    import time

    def watch() -> None:
        while True:
            if os.getppid() != pid:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _registered(ctx: typer.Context, name: str) -> str:
    """A registered adapter's name as ``NAME=PATH``."""
    from dataflywheel.training.adapters import get_adapter

    return f"{name}={get_adapter(state(ctx).settings(), name.strip()).path}"


def serve_model(
    ctx: typer.Context,
    model: str = typer.Option(
        ...,
        "--model",
        "-m",
        help="Candidate name, built-in alias (tiny-random-llama), model folder, GGUF file or hub id.",
    ),
    adapter: list[str] | None = typer.Option(
        None,
        "--adapter",
        "-a",
        help="A LoRA adapter to serve too: a registered adapter's NAME or ALIAS=PATH (repeatable). "
        "Ask for it as model NAME/ALIAS.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", "-p", min=1, max=65535, help="Port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help=f"Server log level: {', '.join(LOG_LEVELS)}."),
    served_model_name: str | None = typer.Option(
        None, "--served-model-name", help="The model name clients send for the base model (default: --model)."
    ),
    max_batch_size: int = typer.Option(16, "--max-batch-size", min=1, help="Most requests generated together."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads of torch (default: every core)."),
    dtype: str | None = typer.Option(
        None,
        "--dtype",
        help="auto, fastest, float32, bfloat16 or float16 (default: serving.dtype; auto: float32 on CPU, so "
        "answers do not depend on the batch they were generated in; fastest: bf16 where the CPU has it).",
    ),
    parent_pid: int | None = typer.Option(
        None, "--parent-pid", hidden=True, help="Exit when this process ends (set by the deployment manager)."
    ),
) -> None:
    """Serve a local model with OpenAI's chat-completions API (/v1/chat/completions, /v1/models)."""
    with handle_errors():
        adapter = [_registered(ctx, value) if "=" not in value else value for value in adapter or []]
    adapters = parse_adapters(adapter)
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise typer.BadParameter(f"{log_level!r}: expected one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    name = served_model_name or model
    if parent_pid is not None:
        _exit_with(parent_pid)
    with handle_errors():
        with serve_extra("serve-model"):
            import uvicorn

            from dataflywheel.serving.app import create_app
        from dataflywheel.models.device import resolve_device, serving_dtype
        from dataflywheel.models.engine import LocalEngine

        settings = state(ctx).settings()
        with_adapters = f" with adapters {', '.join(adapters)}" if adapters else ""
        console.print(f"loading {model}{with_adapters} ...", highlight=False, soft_wrap=True)
        engine = LocalEngine.from_name(
            model,
            settings,
            adapters=adapters,
            max_batch_size=max_batch_size,
            threads=threads,
            dtype=serving_dtype(dtype or settings.serving.dtype, resolve_device("auto")),
        )
        app = create_app(engine, name)
        shown_host = f"[{host}]" if ":" in host else host
        console.print(
            f"serving {', '.join([name, *adapters])} on http://{shown_host}:{port}/v1 "
            f"(device {engine.device}, {str(engine.dtype).removeprefix('torch.')}, batches of up to {max_batch_size})",
            highlight=False,
            soft_wrap=True,
        )
        uvicorn.run(app, host=host, port=port, log_level=level)
