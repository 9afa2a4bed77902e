"""``flywheel proxy`` (the logging proxy), ``flywheel promote`` and ``flywheel rollback`` (through the API)."""

from __future__ import annotations

from typing import Any

import typer

from dataflywheel.cli.common import console, guarded, print_json, state
from dataflywheel.cli.jobs import _client
from dataflywheel.cli.options import ApiJsonOption, ApiKeyOption, ApiUrlOption, ClientIdFilter
from dataflywheel.jobs.routes import RouteMode


@guarded
def proxy(
    ctx: typer.Context,
    upstream: str | None = typer.Option(
        None, "--upstream", help="The big model's OpenAI-compatible base URL, ending in /v1 (proxy.upstream_url)."
    ),
    host: str | None = typer.Option(None, "--host", help="Address to listen on (proxy.host)."),
    port: int | None = typer.Option(None, "--port", "-p", min=1, max=65535, help="Port to listen on (proxy.port)."),
) -> None:
    """Serve the logging proxy: /v1/chat/completions forwarded to the upstream (or a promoted candidate), every
    call logged into the log store out of band; counters at /proxy/stats."""
    import sys

    import uvicorn

    from dataflywheel.proxy.build import build_proxy_app

    # The log writer's thread (records, PII redaction) shares the GIL with the event loop that serves callers:
    # a short switch interval gives the loop the GIL back within 0.5 ms instead of 5 ms.
    sys.setswitchinterval(0.0005)

    settings = state(ctx).settings()
    app = build_proxy_app(settings, upstream)
    host = host or settings.proxy.host
    port = port or settings.proxy.port
    console.print(
        f"logging proxy on http://{host}:{port}/v1 -> {upstream or settings.proxy.upstream_url}",
        highlight=False,
        soft_wrap=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")


def _event_line(event: dict[str, Any]) -> str:
    if not event["active"]:
        return f"{event['workload_id']}/{event['client_id']}: all traffic to the big model ({event['reason']})"
    share = f" {event['canary_share']:.0%}" if event.get("canary_share") is not None else ""
    override = " (override: " + event["reason"] + ")" if event["override"] else ""
    return (
        f"{event['workload_id']}/{event['client_id']}: {event['mode']}{share} to {event['candidate']} "
        f"({event['eval_type']}) as {event['model']} at {event['base_url']}{override}"
    )


@guarded
def promote(
    ctx: typer.Context,
    job_id: str = typer.Argument(..., help="The completed job whose candidate is promoted."),
    mode: RouteMode = typer.Option(..., "--mode", help="shadow, canary or full."),
    share: float | None = typer.Option(None, "--share", min=0.0, max=1.0, help="canary: the candidate's share."),
    candidate: str | None = typer.Option(None, "--candidate", help="Default: the job's recommended candidate."),
    eval_type: str | None = typer.Option(None, "--eval-type", help="base, icl or customized (default: recommended)."),
    base_url: str | None = typer.Option(None, "--base-url", help="Where the candidate is served (ending in /v1)."),
    model: str | None = typer.Option(None, "--model", help="The model name there (default: the adapter's name)."),
    override: bool = typer.Option(False, "--override", help="Promote although the gate does not pass (recorded)."),
    reason: str = typer.Option("", "--reason", help="Why (required with --override)."),
    as_json: ApiJsonOption = False,
    url: ApiUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Make a job's candidate the route of its workload in the logging proxy (shadow, canary or full)."""
    body: dict[str, Any] = {"mode": mode.value, "override": override, "reason": reason}
    for key, value in (
        ("canary_share", share),
        ("candidate", candidate),
        ("eval_type", eval_type),
        ("base_url", base_url),
        ("model", model),
    ):
        if value is not None:
            body[key] = value
    with _client(ctx, url, api_key) as client:
        answer = client.request("POST", f"/api/jobs/{job_id}/promote", json=body)
    if as_json:
        print_json(answer)
        return
    console.print(_event_line(answer["event"]), highlight=False, soft_wrap=True)
    gate = answer["gate"]
    console.print(
        f"gate: {'passes' if gate['passes'] else 'does not pass'}: {gate['reason']}", highlight=False, soft_wrap=True
    )


@guarded
def rollback(
    ctx: typer.Context,
    workload_id: str = typer.Argument(..., help="The workload whose traffic goes back to the big model."),
    client_id: ClientIdFilter = None,
    reason: str = typer.Option("", "--reason", help="Why (recorded)."),
    as_json: ApiJsonOption = False,
    url: ApiUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Send all of a workload's traffic back to the big model (one call)."""
    body: dict[str, Any] = {"reason": reason}
    if client_id is not None:
        body["client_id"] = client_id
    with _client(ctx, url, api_key) as client:
        answer = client.request("POST", f"/api/workloads/{workload_id}/rollback", json=body)
    if as_json:
        print_json(answer)
        return
    for event in answer["data"]:
        console.print(_event_line(event), highlight=False, soft_wrap=True)
