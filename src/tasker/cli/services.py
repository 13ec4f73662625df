"""``tasker orchestrator``, ``tasker worker`` and ``tasker serve``: the long-running processes."""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Annotated

import typer

from tasker.cli.common import configure_logging, database_url, handle_errors, settings, until_signalled
from tasker.engine.orchestrator import Orchestrator, OrchestratorConfig
from tasker.store.db import connection
from tasker.store.migrate import migrate
from tasker.worker.process import Worker, WorkerConfig

LogLevel = Annotated[str, typer.Option("--log-level", envvar="TASKER_LOG_LEVEL", help="debug, info, warning")]
Imports = Annotated[
    list[str] | None,
    typer.Option("--import", "-i", help="module(s) to import first, e.g. ones that register handlers by name"),
]


def _prepare(log_level: str, imports: list[str] | None) -> str:
    configure_logging(log_level)
    sys.path.insert(0, os.getcwd())  # handlers named by dotted path are found from the working directory
    for module in imports or []:
        importlib.import_module(module)
    url = database_url()

    async def _migrate() -> None:
        async with connection(url) as conn:
            await migrate(conn)

    asyncio.run(_migrate())
    return url


@handle_errors
def orchestrator(
    concurrency: Annotated[int, typer.Option(help="results applied at once")] = 8,
    log_level: LogLevel = "info",
) -> None:
    """Run an orchestrator: apply step results, enqueue ready steps, finalise tasks (TASKER_DATABASE_URL)."""
    url = _prepare(log_level, None)
    service = Orchestrator(url, OrchestratorConfig(env=settings().env, concurrency=concurrency))
    asyncio.run(until_signalled(service.run))


@handle_errors
def worker(
    namespace: Annotated[list[str], typer.Option("--namespace", "-n", help="namespace(s) to serve")],
    concurrency: Annotated[int, typer.Option(help="handlers running at once")] = 10,
    lease_seconds: Annotated[
        int, typer.Option(help="visibility timeout of a claimed step, renewed while running")
    ] = 30,
    imports: Imports = None,
    log_level: LogLevel = "info",
) -> None:
    """Run a worker for one or more namespaces (TASKER_DATABASE_URL)."""
    url = _prepare(log_level, imports)
    config = WorkerConfig(
        namespaces=namespace, concurrency=concurrency, lease_seconds=lease_seconds, env=settings().env
    )
    asyncio.run(until_signalled(Worker(url, config).run))


@handle_errors
def serve(
    namespace: Annotated[list[str], typer.Option("--namespace", "-n", help="namespace(s) to serve")],
    concurrency: Annotated[int, typer.Option(help="handlers running at once")] = 10,
    imports: Imports = None,
    log_level: LogLevel = "info",
) -> None:
    """Run an orchestrator and a worker in one process, for small deployments."""
    url = _prepare(log_level, imports)
    env = settings().env
    orchestrator_service = Orchestrator(url, OrchestratorConfig(env=env))
    worker_service = Worker(url, WorkerConfig(namespaces=namespace, concurrency=concurrency, env=env))

    async def both(stop: asyncio.Event) -> None:
        await asyncio.gather(orchestrator_service.run(stop), worker_service.run(stop))

    asyncio.run(until_signalled(both))
