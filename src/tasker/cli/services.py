"""``tasker orchestrator``, ``tasker worker`` and ``tasker serve``: the long-running processes."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tasker.cli.common import database_url, ensure_port_free, handle_errors, run, settings, until_signalled

if TYPE_CHECKING:
    import asyncio

    from tasker.config import Settings
    from tasker.engine.orchestrator import OrchestratorConfig

LogLevel = Annotated[str, typer.Option("--log-level", envvar="TASKER_LOG_LEVEL", help="debug, info, warning")]
MetricsPort = Annotated[
    int | None, typer.Option("--metrics-port", envvar="TASKER_METRICS_PORT", help="serve Prometheus metrics here")
]
Imports = Annotated[
    list[str] | None,
    typer.Option("--import", "-i", help="module(s) to import first, e.g. ones that register handlers by name"),
]


def _prepare(log_level: str, imports: list[str] | None, metrics_port: int | None = None) -> str:
    """Logging, tracing, metrics, handler imports and migrations: what every service does before it runs."""
    from tasker.store.db import connection
    from tasker.store.migrate import migrate
    from tasker.telemetry import configure_logging, configure_tracing, serve_metrics

    current = settings()
    port = metrics_port or current.metrics_port
    if port:
        ensure_port_free("0.0.0.0", port, "--metrics-port")  # where prometheus_client binds
    configure_logging(log_level, current.log_format)
    configure_tracing(current.otel_exporter)
    serve_metrics(port)
    sys.path.insert(0, os.getcwd())  # handlers named by dotted path are found from the working directory
    for module in imports or []:
        importlib.import_module(module)
    url = database_url()

    async def _migrate() -> None:
        async with connection(url) as conn:
            await migrate(conn)

    run(_migrate())
    return url


def _quiet_server(config: Any) -> Any:
    """uvicorn inside `serve`: the process's own signal handlers stop everything, uvicorn's would stop only it."""
    import uvicorn

    class QuietServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return QuietServer(config)


def orchestrator_config(current: Settings, concurrency: int = 8) -> OrchestratorConfig:
    """The orchestrator's configuration from the settings (one place, shared by `orchestrator` and `serve`)."""
    from tasker.engine.orchestrator import OrchestratorConfig
    from tasker.engine.retention import RetentionPolicy
    from tasker.engine.staleness import StalenessDefaults

    retention = None
    if current.retention_days is not None:
        retention = RetentionPolicy(
            days=current.retention_days,
            archive=current.retention_mode == "archive",
            batch_size=current.retention_batch_size,
            interval_seconds=current.retention_interval_seconds,
        )
    return OrchestratorConfig(
        env=current.env,
        concurrency=concurrency,
        staleness=StalenessDefaults(
            waiting_for_dependencies_minutes=current.staleness_waiting_for_dependencies_minutes,
            waiting_for_retry_minutes=current.staleness_waiting_for_retry_minutes,
            steps_in_process_minutes=current.staleness_steps_in_process_minutes,
            task_max_lifetime_hours=current.staleness_task_max_lifetime_hours,
            interval_seconds=current.staleness_interval_seconds,
        ),
        staleness_enabled=current.staleness_enabled,
        staleness_dry_run=current.staleness_dry_run,
        staleness_batch_size=current.staleness_batch_size,
        schedules_enabled=current.schedules_enabled,
        retention=retention,
    )


@handle_errors
def orchestrator(
    concurrency: Annotated[int, typer.Option(help="results applied at once")] = 8,
    metrics_port: MetricsPort = None,
    log_level: LogLevel = "info",
) -> None:
    """Run an orchestrator: apply step results, enqueue ready steps, finalise tasks (TASKER_DATABASE_URL)."""
    from tasker.engine.orchestrator import Orchestrator

    url = _prepare(log_level, None, metrics_port)
    service = Orchestrator(url, orchestrator_config(settings(), concurrency))
    run(until_signalled(service.run))


@handle_errors
def worker(
    namespace: Annotated[list[str], typer.Option("--namespace", "-n", help="namespace(s) to serve")],
    concurrency: Annotated[int, typer.Option(help="handlers running at once")] = 10,
    lease_seconds: Annotated[
        int, typer.Option(help="visibility timeout of a claimed step, renewed while running")
    ] = 30,
    imports: Imports = None,
    metrics_port: MetricsPort = None,
    log_level: LogLevel = "info",
) -> None:
    """Run a worker for one or more namespaces (TASKER_DATABASE_URL)."""
    from tasker.worker.process import Worker, WorkerConfig

    url = _prepare(log_level, imports, metrics_port)
    config = WorkerConfig(
        namespaces=namespace,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        env=settings().env,
        handler_allowed_modules=settings().handler_allowed_modules,
        fast_path=settings().worker_fast_path,
    )
    run(until_signalled(Worker(url, config).run))


@handle_errors
def serve(
    namespace: Annotated[list[str], typer.Option("--namespace", "-n", help="namespace(s) to serve")],
    concurrency: Annotated[int, typer.Option(help="handlers running at once")] = 10,
    api: Annotated[bool, typer.Option("--api/--no-api", help="also serve the REST API")] = True,
    port: Annotated[int | None, typer.Option(help="API port (default: settings api_port)")] = None,
    imports: Imports = None,
    metrics_port: MetricsPort = None,
    log_level: LogLevel = "info",
) -> None:
    """Run an orchestrator, a worker and the REST API in one process, for small deployments."""
    import asyncio

    import uvicorn

    from tasker.api.app import create_app
    from tasker.engine.orchestrator import Orchestrator
    from tasker.errors import ConfigurationError
    from tasker.worker.process import Worker, WorkerConfig

    current = settings()
    api_port = port or current.api_port
    if api:
        ensure_port_free(current.api_host, api_port, "--port")
    url = _prepare(log_level, imports, metrics_port)
    orchestrator_service = Orchestrator(url, orchestrator_config(current))
    worker_config = WorkerConfig(
        namespace,
        concurrency,
        env=current.env,
        handler_allowed_modules=current.handler_allowed_modules,
        fast_path=current.worker_fast_path,
    )
    worker_service = Worker(url, worker_config)

    async def everything(stop: asyncio.Event) -> None:
        services = [orchestrator_service.run(stop), worker_service.run(stop)]
        if api:
            server = _quiet_server(
                uvicorn.Config(
                    create_app(current, database_url=url),
                    host=current.api_host,
                    port=api_port,
                    log_level=log_level.lower(),
                )
            )

            async def api_until_stopped() -> None:
                try:
                    await server.serve()
                except SystemExit:  # uvicorn exits when it cannot start (the port taken since we checked it)
                    stop.set()  # the orchestrator and the worker drain and stop too
                    raise ConfigurationError(
                        f"the API could not start on {current.api_host}:{api_port} (port in use? see --port)"
                    ) from None

            async def serve_api() -> None:
                api_task = asyncio.create_task(api_until_stopped())
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait([api_task, stopped], return_when=asyncio.FIRST_COMPLETED)
                server.should_exit = True
                stopped.cancel()
                await api_task

            services.append(serve_api())
        outcomes = await asyncio.gather(*services, return_exceptions=True)
        for outcome in outcomes:  # every service has drained; now report the first failure
            if isinstance(outcome, BaseException):
                raise outcome

    run(until_signalled(everything))
