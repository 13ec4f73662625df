"""``tasker api``: serve the REST API with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from tasker.cli.common import configure_logging, database_url, ensure_port_free, handle_errors, run, settings


@handle_errors
def api(
    host: Annotated[str | None, typer.Option(help="bind address (default: settings api_host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: settings api_port)")] = None,
    log_level: Annotated[str, typer.Option("--log-level", envvar="TASKER_LOG_LEVEL")] = "info",
) -> None:
    """Serve the REST API (/v1/..., /health, /metrics, /api-docs) on TASKER_DATABASE_URL."""
    import uvicorn

    from tasker.api.app import create_app
    from tasker.store.db import connection
    from tasker.store.migrate import migrate

    current = settings()
    bind_host, bind_port = host or current.api_host, port or current.api_port
    ensure_port_free(bind_host, bind_port, "--port")
    configure_logging(log_level)
    url = database_url()

    async def _migrate() -> None:
        async with connection(url) as conn:
            await migrate(conn)

    run(_migrate())
    app = create_app(current, database_url=url)
    uvicorn.run(app, host=bind_host, port=bind_port, log_level=log_level.lower())
