"""``tasker db migrate|schema-doc``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tasker.config import load_settings
from tasker.store import embedded
from tasker.store.db import connection
from tasker.store.migrate import migrate as run_migrations
from tasker.store.schema_doc import schema_document

app = typer.Typer(no_args_is_help=True, help="Database: migrations and the schema document")
console = Console(stderr=True)


async def migrate_database(url: str) -> list[str]:
    async with connection(url) as conn:
        return await run_migrations(conn)


@app.command("migrate")
def migrate() -> None:
    """Apply pending migrations (safe to run from several processes at once). Uses TASKER_DATABASE_URL."""
    url = embedded.database_url(load_settings())
    applied = asyncio.run(migrate_database(url))
    if applied:
        console.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        console.print("database is up to date")


async def _document(url: str) -> str:
    async with connection(url) as conn:
        await run_migrations(conn)
        return await schema_document(conn)


@app.command("schema-doc")
def schema_doc(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Regenerate the schema document (Markdown) from the live, migrated database catalog."""
    url = embedded.database_url(load_settings())
    text = asyncio.run(_document(url))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
