"""``tasker api``: serve the REST API with uvicorn."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
import uvicorn

from tasker.api.app import create_app
from tasker.cli.common import configure_logging, database_url, handle_errors, settings
from tasker.store.db import connection
from tasker.store.migrate import migrate


@handle_errors
def api(
    host: Annotated[str | None, typer.Option(help="bind address (default: settings api_host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: settings api_port)")] = None,
    log_level: Annotated[str, typer.Option("--log-level", envvar="TASKER_LOG_LEVEL")] = "info",
) -> None:
    """Serve the REST API (/v1/..., /health, /metrics, /api-docs) on TASKER_DATABASE_URL."""
    configure_logging(log_level)
    current = settings()
    url = database_url()

    async def _migrate() -> None:
        async with connection(url) as conn:
            await migrate(conn)

    asyncio.run(_migrate())
    app = create_app(current, database_url=url)
    uvicorn.run(app, host=host or current.api_host, port=port or current.api_port, log_level=log_level.lower())
