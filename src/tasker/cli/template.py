"""``tasker template validate|register|list|show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tasker.cli.common import console, database_url, handle_errors, print_json, run
from tasker.model.template import load_template_paths
from tasker.store.db import connection
from tasker.store.migrate import migrate
from tasker.store.templates import template_get, template_list, template_register_paths

app = typer.Typer(no_args_is_help=True, help="Task templates: validate, register, list, show")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@app.command("validate")
@handle_errors
def validate(path: Annotated[Path, typer.Argument(help="a YAML file or a directory of them")]) -> None:
    """Validate templates without touching the database; exits 1 naming the file, step and field at fault."""
    for file, template in load_template_paths(path):
        console.print(f"[green]ok[/green] {file}: {template.key} ({len(template.steps)} steps)")


@app.command("register")
@handle_errors
def register(
    path: Annotated[Path, typer.Argument(help="a YAML file or a directory of them")],
    force: Annotated[bool, typer.Option(help="replace a changed template under the same version")] = False,
    as_json: JsonOption = False,
) -> None:
    """Register templates (idempotent; a changed template needs a new version, or --force)."""

    async def _register() -> list[dict[str, str]]:
        async with connection(database_url()) as conn:
            await migrate(conn)
            done = await template_register_paths(conn, path, force=force)
        return [
            {"template": f"{r.namespace}/{r.name}:{r.version}", "status": r.status, "uuid": str(r.named_task_uuid)}
            for r in done
        ]

    rows = run(_register())
    if as_json:
        print_json(rows)
        return
    for row in rows:
        console.print(f"{row['status']:>9}  {row['template']}")


@app.command("list")
@handle_errors
def list_templates(
    namespace: Annotated[str | None, typer.Option(help="only this namespace")] = None, as_json: JsonOption = False
) -> None:
    """List registered templates."""

    async def _list() -> list[dict[str, object]]:
        async with connection(database_url()) as conn:
            return [vars(t) for t in await template_list(conn, namespace)]

    rows = run(_list())
    if as_json:
        print_json(rows)
        return
    table = Table("namespace", "name", "version", "steps", "description")
    for row in rows:
        table.add_row(
            str(row["namespace"]),
            str(row["name"]),
            str(row["version"]),
            str(row["step_count"]),
            str(row["description"] or ""),
        )
    console.print(table)


@app.command("show")
@handle_errors
def show(namespace: str, name: str, version: Annotated[str, typer.Argument()] = "1.0.0") -> None:
    """Print a registered template as JSON."""

    async def _show() -> dict[str, object]:
        async with connection(database_url()) as conn:
            _, template = await template_get(conn, namespace, name, version)
        return template.to_configuration()

    print_json(run(_show()))
