"""``tasker db migrate|schema-doc|prune``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasker.cli.common import database_url, errors, handle_errors, run
from tasker.cli.prune import prune

app = typer.Typer(no_args_is_help=True, help="Database: migrations, the schema document, retention")
app.command("prune")(prune)


async def migrate_database(url: str) -> list[str]:
    from tasker.store.db import connection
    from tasker.store.migrate import migrate as run_migrations

    async with connection(url) as conn:
        return await run_migrations(conn)


async def _document(url: str) -> str:
    from tasker.store.db import connection
    from tasker.store.migrate import migrate as run_migrations
    from tasker.store.schema_doc import schema_document

    async with connection(url) as conn:
        await run_migrations(conn)
        return await schema_document(conn)


@app.command("migrate")
@handle_errors
def migrate() -> None:
    """Apply pending migrations (safe to run from several processes at once). Uses TASKER_DATABASE_URL."""
    applied = run(migrate_database(database_url()))
    if applied:
        errors.print(f"applied {len(applied)} migration(s): {', '.join(applied)}", soft_wrap=True)
    else:
        errors.print("database is up to date")


@app.command("schema-doc")
@handle_errors
def schema_doc(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Regenerate the schema document (Markdown) from the live, migrated database catalog."""
    text = run(_document(database_url()))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        errors.print(f"wrote {output}", soft_wrap=True)
