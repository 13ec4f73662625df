"""``tasker demo``: start the database, migrate it and show what is there."""

from __future__ import annotations

import asyncio
import time

from rich.console import Console
from rich.table import Table

from tasker.config import load_settings
from tasker.store import embedded
from tasker.store.db import connection
from tasker.store.migrate import migrate
from tasker.store.schema_doc import describe

console = Console()


async def _summary(url: str) -> None:
    async with connection(url) as conn:
        applied = await migrate(conn)
        desc = await describe(conn)
        version = await (await conn.execute("SELECT current_setting('server_version') AS v")).fetchone()
    console.print(f"PostgreSQL {version['v'] if version else '?'}; migrations applied now: {len(applied)}")
    table = Table(title="schema tasker")
    table.add_column("table")
    table.add_column("columns", justify="right")
    table.add_column("description")
    for t in desc.tables:
        table.add_row(t.name, str(len(t.columns)), t.description)
    console.print(table)


def demo() -> None:
    """Run the demo on the embedded PostgreSQL (or TASKER_DATABASE_URL)."""
    settings = load_settings()
    started = time.perf_counter()
    url = embedded.database_url(settings)
    where = f"embedded PostgreSQL in {settings.data_dir}" if embedded.is_embedded(settings) else "TASKER_DATABASE_URL"
    console.print(f"database: {where} (ready in {time.perf_counter() - started:.2f}s)")
    asyncio.run(_summary(url))
