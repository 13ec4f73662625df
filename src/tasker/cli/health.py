"""``tasker health``: is the API (with --api-url) or the database reachable, and what does it hold."""

from __future__ import annotations

from typing import Annotated

import typer

from tasker.cli import backend as backends
from tasker.cli.common import console, handle_errors, print_json, show_table, table, text_column


@handle_errors
def health(
    api_url: Annotated[str | None, typer.Option("--api-url", envvar="TASKER_API_URL", help="check this API")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check health; exit 1 when unhealthy."""
    backends.configure(api_url, None, None)
    source = backends.backend()
    report = source.health("detailed") if api_url else source.health()
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        shown = table("check", "status", text_column("message"))
        for name, check in report.checks.items():
            shown.add_row(name, check.status, check.message or "")
        console.print(f"status: [bold]{report.status}[/bold]")
        show_table(shown)
        counts = report.info.get("system_health")
        if counts:
            console.print(f"tasks: {counts['tasks']}\nsteps: {counts['steps']}")
    if report.status not in ("healthy", "ready", "alive"):
        raise typer.Exit(1)
