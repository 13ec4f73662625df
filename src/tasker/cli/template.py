"""``tasker template validate|register|list|show``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from tasker.cli.common import (
    console,
    database_url,
    handle_errors,
    print_json,
    run,
    show_table,
    table,
    text_column,
    warn,
)

app = typer.Typer(no_args_is_help=True, help="Task templates: validate, register, list, show")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@contextmanager
def _named(path: Path) -> Iterator[None]:
    """A document nested deeper than the YAML parser can recurse is a template error naming the path."""
    from tasker.errors import TemplateError

    try:
        yield
    except RecursionError:
        raise TemplateError(f"{path}: a YAML document is nested too deeply to read") from None


@app.command("validate")
@handle_errors
def validate(path: Annotated[Path, typer.Argument(help="a YAML file or a directory of them")]) -> None:
    """Validate templates without touching the database; every error of every file is listed (naming the file,
    step and field), keys Tasker ignores are warned about, and the exit status is 1 when any file is refused."""
    from tasker.model.template import load_template_tree, template_warnings

    with _named(path):
        tree = load_template_tree(path)
    for file, template in tree.loaded:
        console.print(f"[green]ok[/green] {file}: {template.key} ({len(template.steps)} steps)", soft_wrap=True)
        for message in template_warnings(template):
            warn(message)
    _refused(tree.refused)


def _refused(refused: list[tuple[Path, str]]) -> None:
    """Each refused file's errors, one line each on stderr; exit 1 when there is any."""
    for _, message in refused:
        for line in message.splitlines():
            sys.stderr.write(f"error: {line}\n")
    if refused:
        raise typer.Exit(1)


@app.command("register")
@handle_errors
def register(
    path: Annotated[Path, typer.Argument(help="a YAML file or a directory of them")],
    force: Annotated[bool, typer.Option(help="replace a changed template under the same version")] = False,
    as_json: JsonOption = False,
) -> None:
    """Register templates (idempotent; a changed template needs a new version, or --force). Every valid file is
    registered; each refused one is reported, and the exit status is 1 when any was refused."""
    from tasker.store.db import connection
    from tasker.store.migrate import migrate
    from tasker.store.templates import TreeRegistration, template_register_tree

    async def _register() -> TreeRegistration:
        async with connection(database_url()) as conn:
            await migrate(conn)
            with _named(path):
                return await template_register_tree(conn, path, force=force)

    done = run(_register())
    rows = [
        {"template": f"{r.namespace}/{r.name}:{r.version}", "status": r.status, "uuid": str(r.named_task_uuid)}
        for r in done.registered
    ]
    if as_json:
        print_json(rows + [{"file": str(file), "status": "refused", "error": error} for file, error in done.refused])
    else:
        for row in rows:
            console.print(f"{row['status']:>9}  {row['template']}", soft_wrap=True)
    _refused(done.refused)


@app.command("list")
@handle_errors
def list_templates(
    namespace: Annotated[str | None, typer.Option(help="only this namespace")] = None, as_json: JsonOption = False
) -> None:
    """List registered templates."""
    from tasker.store.db import connection
    from tasker.store.templates import template_list

    async def _list() -> list[dict[str, Any]]:
        async with connection(database_url()) as conn:
            return [asdict(t) for t in await template_list(conn, namespace)]  # slots dataclasses: no vars()

    rows = run(_list())
    if as_json:
        print_json(rows)
        return
    shown = table("namespace", "name", "version", "steps", text_column("description"))
    for row in rows:
        shown.add_row(row["namespace"], row["name"], row["version"], str(row["step_count"]), row["description"] or "")
    show_table(shown)


@app.command("show")
@handle_errors
def show(namespace: str, name: str, version: Annotated[str, typer.Argument()] = "1.0.0") -> None:
    """Print a registered template as JSON."""
    from tasker.store.db import connection
    from tasker.store.templates import template_get

    async def _show() -> dict[str, object]:
        async with connection(database_url()) as conn:
            _, template = await template_get(conn, namespace, name, version)
        return template.to_configuration()

    print_json(run(_show()))
