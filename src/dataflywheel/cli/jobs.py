"""``flywheel jobs``: create, list, show, watch, cancel and delete jobs through the API (``flywheel serve``).

An HTTP client of ``/api/jobs``: the server does the work, so these commands run anywhere the API is
reachable. ``--url`` (or ``$FLYWHEEL_API_URL``) defaults to ``http://{api.host}:{api.port}`` of the
settings; ``--api-key`` (or ``$FLYWHEEL_API_KEY``, else the variable that ``api.api_key_env`` names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final, TypeVar

import httpx
import typer
from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.table import Table

from dataflywheel.api.schemas import (
    CancelResponse,
    DeleteResponse,
    JobCreated,
    JobDetailPublic,
    JobsPublic,
    NimPublic,
)
from dataflywheel.api.stage_schema import StagePublic
from dataflywheel.cli.common import console, guarded, parse_assignments, print_json, state
from dataflywheel.cli.job_view import (
    TERMINAL,
    eval_detail,
    follow,
    poll_until_done,
    styled,
    training_detail,
)
from dataflywheel.cli.options import (
    ApiJsonOption,
    ApiKeyOption,
    ApiUrlOption,
    CandidatesOption,
    ClientIdFilter,
    ClientIdOption,
    JobIdArgument,
    Overrides,
    WorkloadIdFilter,
    WorkloadIdOption,
    overrides_option,
)
from dataflywheel.cli.run import result_table
from dataflywheel.closing import Closing
from dataflywheel.errors import ConfigError, RemoteServiceError
from dataflywheel.settings import secret_from_env
from dataflywheel.web.format import duration

__all__ = ["ApiClient", "ApiError", "jobs_app", "parse_assignments", "result_table"]

jobs_app = typer.Typer(
    help="Create, follow, cancel and delete flywheel jobs through the API (start it with flywheel serve).",
    no_args_is_help=True,
)

EVAL_TYPES: Final = ("base-eval", "icl-eval", "customized-eval")
# The scores a person compares first, with short column names; others stay in --json.
KEY_METRICS: Final = {
    "function_name_accuracy": "name acc",
    "function_name_and_args_accuracy": "name+args acc",
    "required_arguments_accuracy": "required args",
    "argument_similarity": "arg similarity",
    "judge": "judge",
}


# ---- the HTTP client -------------------------------------------------------------------------------------
class ApiError(RemoteServiceError):
    """The API refused a request or could not be reached; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


@dataclass
class ApiClient(Closing):
    """A small synchronous client of the flywheel API."""

    url: str
    api_key: str | None = None
    timeout: float = 30.0
    transport: httpx.BaseTransport | None = None
    _client: httpx.Client | None = field(default=None, init=False, repr=False)

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(
                base_url=self.url.rstrip("/"), headers=headers, timeout=self.timeout, transport=self.transport
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer of ``method path``; :class:`ApiError` with the server's message otherwise."""
        try:
            reply = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach the flywheel API at {self.url}: {exc or type(exc).__name__} "
                "(is `flywheel serve` running? see --url)"
            ) from None
        if reply.status_code >= 400:
            raise ApiError(_error_message(reply), reply.status_code)
        return reply.json()

    def create_job(self, body: Mapping[str, object]) -> JobCreated:
        return JobCreated.model_validate(self.request("POST", "/api/jobs", json=body))

    def list_jobs(self, **params: Any) -> JobsPublic:
        answer = self.request("GET", "/api/jobs", params={k: v for k, v in params.items() if v is not None})
        return JobsPublic.model_validate(answer)

    def get_job(self, job_id: str) -> JobDetailPublic:
        return JobDetailPublic.model_validate(self.request("GET", f"/api/jobs/{job_id}"))

    def cancel_job(self, job_id: str) -> CancelResponse:
        return CancelResponse.model_validate(self.request("POST", f"/api/jobs/{job_id}/cancel"))

    def delete_job(self, job_id: str) -> DeleteResponse:
        return DeleteResponse.model_validate(self.request("DELETE", f"/api/jobs/{job_id}"))


def _error_message(reply: httpx.Response) -> str:
    try:
        detail = reply.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI's request validation: [{loc, msg}, ...]
        parts = []
        for err in detail:
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg')}")
        detail = "; ".join(parts)
    message = f"HTTP {reply.status_code}: {detail or reply.text[:300] or reply.reason_phrase}"
    if reply.status_code == 401:
        message += " (give the key with --api-key or $FLYWHEEL_API_KEY)"
    return message


def _client(ctx: typer.Context, url: str | None, api_key: str | None) -> ApiClient:
    """The client for ``--url``/``--api-key``; the settings fill in what is not given."""
    if url is None or api_key is None:
        settings = state(ctx).settings()
        if url is None:
            host = settings.api.host
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            url = f"http://{f'[{host}]' if ':' in host else host}:{settings.api.port}"
        if api_key is None:
            api_key = secret_from_env(settings.api.api_key_env, setting="api.api_key_env", required=False)
    return ApiClient(url, api_key)


_Answer = TypeVar("_Answer", bound=BaseModel)


# ---- rendering -------------------------------------------------------------------------------------------
def _when(value: datetime | str | None) -> str:
    if not value:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def jobs_table(page: JobsPublic) -> Table:
    data = page.data
    first = page.offset + 1 if data else 0
    title = f"Jobs {first}-{page.offset + len(data)} of {page.count} (newest first)"
    table = Table(title=title, title_justify="left")
    table.add_column("id", no_wrap=True, min_width=32)  # whole: the other commands take it
    for column in ("workload", "client", "status", "created", "finished", "records", "error"):
        table.add_column(
            column,
            justify="right" if column == "records" else "left",
            overflow="fold",
            no_wrap=column in ("status", "created", "finished"),
        )
    for job in data:
        table.add_row(
            job.id,
            job.workload_id,
            job.client_id,
            styled(job.status),
            _when(job.created_at),
            _when(job.finished_at),
            str(job.num_records),
            (job.error or "")[:60],
        )
    if not data:
        table.add_row("(none)", "", "", "", "", "", "", "")
    return table


def _score_cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def job_tables(job: JobDetailPublic) -> RenderableType:
    """A job for a person: a summary, its datasets, and per candidate its evaluations and customization."""
    summary = Table(title=f"Job {job.id}", title_justify="left", show_header=False)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("status", styled(job.status))
    summary.add_row("workload / client", f"{job.workload_id} / {job.client_id}")
    eta = f" (eta {duration(job.eta_s)})" if job.eta_s and job.status not in TERMINAL else ""
    summary.add_row("progress", f"{job.progress:.1f}%{eta}")
    summary.add_row("created", _when(job.created_at))
    summary.add_row("started", _when(job.started_at))
    summary.add_row("finished", _when(job.finished_at))
    summary.add_row("records read", str(job.num_records))
    if job.config:
        summary.add_row("overrides", ", ".join(f"{k}={v}" for k, v in job.config.items()))
    if job.llm_judge:
        judge = job.llm_judge
        summary.add_row("judge", f"{judge.model_name or '-'} ({judge.type}, {judge.deployment_status})")
    if job.error:
        summary.add_row("error", f"[red]{job.error}[/]")
    parts: list[RenderableType] = [summary]
    if job.datasets:
        datasets = Table(title="Datasets", title_justify="left")
        datasets.add_column("name")
        datasets.add_column("records", justify="right")
        datasets.add_column("download")
        for d in job.datasets:
            datasets.add_row(d.name, str(d.num_records), d.url)
        parts.append(datasets)
    for nim in job.nims:
        parts.append(candidate_table(nim))
    if job.stages:
        parts.append(stages_table(job.stages))
    if job.result:
        parts.append(result_table(job.result))
    return Group(*parts)


def stages_table(stages: list[StagePublic]) -> Table:
    """The workflow's stages: status, attempts, queue and the worker that ran each one's latest attempt."""
    table = Table(title="Stages", title_justify="left")
    for column in ("stage", "status", "attempts", "queue", "worker"):
        table.add_column(column, justify="right" if column == "attempts" else "left", overflow="fold")
    for st in stages:
        queue = st.queue.value if st.queue else "-"
        table.add_row(st.key, styled(st.status.value), str(st.attempts), queue, st.worker or "-")
    return table


def candidate_table(nim: NimPublic) -> Table:
    """One candidate: a row per evaluation (key scores) and for its customization (training progress)."""
    evals = sorted(nim.evaluations, key=lambda e: _eval_order(e.eval_type))
    metrics = [m for m in KEY_METRICS if any(m in e.scores for e in evals)]
    if not metrics:
        metrics = sorted({m for e in evals for m in e.scores})
    title = (
        f"{nim.model_name}: {styled(nim.status)}, deployment {nim.deployment_status}, {duration(nim.runtime_seconds)}"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("task")
    table.add_column("status")
    table.add_column("progress", justify="right")
    for m in metrics:
        table.add_column(KEY_METRICS.get(m, m), justify="right")
    table.add_column("detail", overflow="fold")
    for e in evals:
        detail = e.error or eval_detail(e)
        table.add_row(
            e.eval_type,
            styled(e.status),
            f"{e.progress:.0f}%",
            *(_score_cell(e.scores.get(m)) for m in metrics),
            detail,
        )
    for c in nim.customizations:
        detail = c.error or training_detail(c)
        table.add_row("customization", styled(c.status), f"{c.progress:.0f}%", *("" for _ in metrics), detail)
    if not evals and not nim.customizations:
        table.add_row("(nothing started)", styled(nim.status), "", *("" for _ in metrics), nim.error or "")
    elif nim.error:
        table.add_row("candidate", styled(nim.status), "", *("" for _ in metrics), f"[red]{nim.error}[/]")
    return table


def _eval_order(eval_type: str) -> int:
    return EVAL_TYPES.index(eval_type) if eval_type in EVAL_TYPES else len(EVAL_TYPES)


# ---- watching --------------------------------------------------------------------------------------------
def watch_job(client: ApiClient, job_id: str, interval: float = 1.0) -> JobDetailPublic:
    """Show the live job view (:mod:`dataflywheel.cli.job_view`) until the job ends; return it as it ended."""
    return follow(lambda: client.get_job(job_id), interval)


def _finish(job: JobDetailPublic) -> None:
    if job.result:
        console.print(result_table(job.result))
    error = f": {job.error}" if job.error else ""
    console.print(f"job {job.id} {styled(job.status)}{error}", highlight=False, soft_wrap=True)
    if job.status != "completed":
        raise typer.Exit(1)


# ---- commands --------------------------------------------------------------------------------------------
@jobs_app.command("create")
@guarded
def create(
    ctx: typer.Context,
    workload_id: WorkloadIdOption,
    client_id: ClientIdOption,
    candidate: CandidatesOption = None,
    set_split: Annotated[Overrides, overrides_option("--set-split", "data_split", "eval_size=20")] = None,
    set_training: Annotated[
        Overrides, overrides_option("--set-training", "training", "epochs=1, lora.adapter_dim=8")
    ] = None,
    set_icl: Annotated[Overrides, overrides_option("--set-icl", "icl")] = None,
    set_recommendation: Annotated[
        Overrides, overrides_option("--set-recommendation", "recommendation rule", "min_ratio=0.9")
    ] = None,
    watch: bool = typer.Option(False, "--watch", help="Follow the job until it ends (as flywheel jobs watch)."),
    as_json: ApiJsonOption = False,
    url: ApiUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Create a flywheel job: curate the workload's logs, evaluate and customize the candidates."""
    body: dict[str, object] = {"workload_id": workload_id, "client_id": client_id}
    for key, values, option in (
        ("data_split_config", set_split, "--set-split"),
        ("training_config", set_training, "--set-training"),
        ("icl_config", set_icl, "--set-icl"),
        ("recommendation_config", set_recommendation, "--set-recommendation"),
    ):
        overrides = parse_assignments(values, option)
        if overrides:
            body[key] = overrides
    if candidate:
        body["candidates"] = list(candidate)
    with _client(ctx, url, api_key) as client:
        created = client.create_job(body)
        if as_json and not watch:
            print_json(created.model_dump(mode="json"))
            return
        if not as_json:
            console.print(f"job [bold]{created.id}[/] created ({created.status})", highlight=False, soft_wrap=True)
        if not watch:
            console.print(f"follow it with: flywheel jobs watch {created.id}", highlight=False, soft_wrap=True)
            return
        job = watch_job(client, created.id) if not as_json else poll_until_done(lambda: client.get_job(created.id))
    if as_json:
        print_json(job.model_dump(mode="json"))
        if job.status != "completed":
            raise typer.Exit(1)
        return
    _finish(job)


@jobs_app.command("list")
@guarded
def list_jobs(
    ctx: typer.Context,
    status: list[str] | None = typer.Option(None, "--status", help="Only jobs in this status (repeatable)."),
    workload_id: WorkloadIdFilter = None,
    client_id: ClientIdFilter = None,
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="Jobs to show."),
    offset: int = typer.Option(0, "--offset", min=0, help="Jobs to skip (newest first)."),
    as_json: ApiJsonOption = False,
    url: ApiUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List jobs, newest first."""
    with _client(ctx, url, api_key) as client:
        page = client.list_jobs(
            status=status or None, workload_id=workload_id, client_id=client_id, limit=limit, offset=offset
        )
    if as_json:
        print_json(page.model_dump(mode="json", exclude={"jobs"}))  # jobs: the blueprint's alias of data
    else:
        console.print(jobs_table(page))


def _job_command(
    name: str, doc: str, call: Callable[[ApiClient, str], _Answer], show: Callable[[_Answer], None]
) -> None:
    """Register ``jobs <name> JOB_ID``: ``call`` the API for the job, print its answer as JSON or ``show`` it."""

    @jobs_app.command(name, help=doc)
    @guarded
    def command(
        ctx: typer.Context,
        job_id: JobIdArgument,
        as_json: ApiJsonOption = False,
        url: ApiUrlOption = None,
        api_key: ApiKeyOption = None,
    ) -> None:
        with _client(ctx, url, api_key) as client:
            answer = call(client, job_id)
        if as_json:
            print_json(answer.model_dump(mode="json"))
        else:
            show(answer)


_job_command(
    "show",
    "Show a job: status, datasets, and per candidate its evaluations' key scores and its customization.",
    ApiClient.get_job,
    lambda job: console.print(job_tables(job)),
)


@jobs_app.command("watch")
@guarded
def watch(
    ctx: typer.Context,
    job_id: JobIdArgument,
    interval: float = typer.Option(1.0, "--interval", min=0.1, help="Seconds between two polls."),
    url: ApiUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Follow a job with live progress bars until it ends, then print its result (exit 1 unless completed)."""
    with _client(ctx, url, api_key) as client:
        try:
            job = watch_job(client, job_id, interval)
        except KeyboardInterrupt:
            console.print("stopped watching (the job goes on)")
            raise typer.Exit(130) from None
    _finish(job)


_job_command(
    "cancel",
    "Cancel a job (pending: at once; running: its stages stop within seconds).",
    ApiClient.cancel_job,
    lambda answer: console.print(f"job {answer.id} {styled(answer.status)}: {answer.message}", highlight=False),
)


@jobs_app.command("delete")
@guarded
def delete(
    ctx: typer.Context,
    job_id: JobIdArgument,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: ApiJsonOption = False,
    url: ApiUrlOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Delete a finished job with everything it made: datasets, eval results, deployment logs, LoRA runs
    (checkpoints, optimizer state) and adapters; prints the space freed."""
    if not yes:
        if as_json:
            raise ConfigError("--json deletes without asking only with --yes")
        if not typer.confirm(f"Delete job {job_id} and everything it made?", err=True):
            raise typer.Exit(1)
    with _client(ctx, url, api_key) as client:
        answer = client.delete_job(job_id)
    if as_json:
        print_json(answer.model_dump(mode="json"))
    else:
        console.print(f"job {answer.id} deleted: {_freed(answer)}", highlight=False)
        for problem in answer.problems:
            console.print(f"[yellow]warning:[/] {problem}", highlight=False)


def _freed(answer: DeleteResponse) -> str:
    """``"12.3 MB freed (1 job folder, 1 dataset build, 1 training run, 1 adapter)"``."""
    from dataflywheel.workflow.job_files import count_kinds, format_bytes

    return f"{format_bytes(answer.freed_bytes)} freed ({count_kinds([item.kind for item in answer.removed])})"
