"""``flywheel serve``: the REST API (``/api/jobs``, ``/api/logs``, ``/api/workloads``, docs at ``/docs``)."""

from __future__ import annotations

import gc

import typer

from dataflywheel.cli.common import console, handle_errors, serve_extra, state

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def serve_api(
    ctx: typer.Context,
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default: settings api.host)."),
    port: int | None = typer.Option(
        None, "--port", "-p", min=1, max=65535, help="Port to listen on (default: settings api.port)."
    ),
    log_level: str = typer.Option("info", "--log-level", help=f"Server log level: {', '.join(LOG_LEVELS)}."),
    recover: bool = typer.Option(
        True,
        "--recover/--no-recover",
        help="Resume unfinished jobs whose process died (at start, then every heartbeat).",
    ),
    proxy: bool | None = typer.Option(
        None,
        "--proxy/--no-proxy",
        help="Serve the logging proxy under /proxy/v1 too (default: when proxy.upstream_url is set).",
    ),
) -> None:
    """Serve the flywheel API: create and follow jobs, load logs. Jobs run inside this process (executor
    embedded) or on Celery workers (executor celery)."""
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise typer.BadParameter(f"{log_level!r}: expected one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    with handle_errors():
        with serve_extra("serve"):
            import uvicorn

            from dataflywheel.api.app import api_key_of, create_api
        settings = state(ctx).settings()
        host = host or settings.api.host
        port = port or settings.api.port
        from dataflywheel.workflow.service import FlywheelService

        # Opened here, not at the app's start-up, so an unreachable job store is one clear error.
        service = FlywheelService(settings)
        mount = proxy if proxy is not None else bool(settings.proxy.upstream_url)
        app = create_api(settings, service, recover=recover, mount_proxy=mount)
        shown_host = f"[{host}]" if ":" in host else host
        if api_key_of(settings) is not None:
            auth = f"API key required (env {settings.api.api_key_env})"
        else:
            auth = "[yellow]no API key[/] (set api.api_key_env to require one)"
        console.print(
            f"flywheel API on http://{shown_host}:{port}/api (docs: http://{shown_host}:{port}/docs); "
            f"executor {settings.executor.kind}; {auth}",
            highlight=False,
            soft_wrap=True,
        )
        # What exists now (modules, the app) lives as long as the process: freezing it keeps the cyclic GC
        # from rescanning it, which otherwise pauses a request for tens of ms every ~100 requests.
        gc.collect()
        gc.freeze()
        uvicorn.run(app, host=host, port=port, log_level=level)
