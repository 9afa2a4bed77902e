"""The options and arguments several commands share, each declared once as an ``Annotated`` alias.

A command names the alias as the parameter's type; the default stays with the parameter: none for a required
option (``workload_id: WorkloadIdOption``), ``None`` or a value otherwise (``candidate: CandidatesOption = None``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

# ---- the workload key ------------------------------------------------------------------------------------
WorkloadIdOption = Annotated[
    str, typer.Option("--workload-id", help="The workload: the agent node (or route) the logs belong to.")
]
ClientIdOption = Annotated[str, typer.Option("--client-id", help="The client: the application the logs come from.")]
WorkloadIdFilter = Annotated[str | None, typer.Option("--workload-id", help="Only this workload (default: every one).")]
ClientIdFilter = Annotated[str | None, typer.Option("--client-id", help="Only this client (default: every one).")]

# ---- what a flywheel job runs ----------------------------------------------------------------------------
CandidatesOption = Annotated[
    list[str] | None,
    typer.Option("--candidate", help="A candidate model (repeatable; default: every configured one)."),
]
Overrides = list[str] | None
"""The values of an :func:`overrides_option`, read by :func:`dataflywheel.cli.common.parse_assignments`."""


def overrides_option(name: str, section: str, example: str = "") -> Any:
    """A repeatable ``KEY=VALUE`` option ``name`` overriding keys of the settings' ``section``, for
    ``Annotated[Overrides, overrides_option(...)] = None``."""
    article = "An" if section[0] in "aeiou" else "A"
    example = f", e.g. {example}" if example else ""
    return typer.Option(name, help=f"{article} {section} override KEY=VALUE (repeatable){example}.")


# ---- the API's client commands ---------------------------------------------------------------------------
ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", envvar="FLYWHEEL_API_URL", help="The API's base URL (default: http://{api.host}:{api.port})."
    ),
]
ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key", envvar="FLYWHEEL_API_KEY", help="The API key (default: the variable api.api_key_env names)."
    ),
]
ApiJsonOption = Annotated[bool, typer.Option("--json", help="Print the API's answer as JSON.")]
JobIdArgument = Annotated[str, typer.Argument(help="The job's id.")]
