"""Helpers to run workflows end to end: register the fixture templates, run an orchestrator and a worker (in this
event loop, or as real processes), create tasks through the engine's entry point and wait for them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from tasker.engine.orchestrator import Orchestrator, OrchestratorConfig
from tasker.engine.task_requests import CreatedTask, create_task
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.transport import Transport
from tasker.model.requests import TaskRequest
from tasker.model.states import TaskState
from tasker.store.db import Connection, connect
from tasker.store.tasks import task_get, task_steps
from tasker.store.templates import template_register_paths
from tasker.worker.process import Worker, WorkerConfig

TEMPLATES = Path(__file__).resolve().parent.parent / "fixtures" / "templates"
SETTLED = {
    TaskState.COMPLETE,
    TaskState.ERROR,
    TaskState.CANCELLED,
    TaskState.RESOLVED_MANUALLY,
    TaskState.BLOCKED_BY_FAILURES,
}


async def register_fixture_templates(conn: Connection) -> None:
    await template_register_paths(conn, TEMPLATES)


async def create(
    conn: Connection,
    namespace: str,
    name: str,
    context: dict[str, Any],
    *,
    transport: Transport | None = None,
    **extra: Any,
) -> CreatedTask:
    request = TaskRequest(namespace=namespace, name=name, version="1.0.0", context=context, **extra)
    return await create_task(conn, transport or PgmqTransport(), request, env="test")


async def wait_settled(conn: Connection, task_uuid: UUID, timeout: float = 30.0) -> dict[str, Any]:
    """Poll until the task completes, fails for good or is blocked; returns the task row."""
    deadline = time.monotonic() + timeout
    while True:
        task = await task_get(conn, task_uuid)
        if TaskState(task["state"]) in SETTLED:
            return task
        if time.monotonic() > deadline:
            steps = await task_steps(conn, task_uuid)
            raise TimeoutError(f"task {task_uuid} still {task['state']}: {[(s['name'], s['state']) for s in steps]}")
        await asyncio.sleep(0.02)


async def wait_step_state(conn: Connection, task_uuid: UUID, state: str, timeout: float = 30.0) -> None:
    """Poll until every step of the task is in ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        steps = await task_steps(conn, task_uuid)
        if steps and all(s["state"] == state for s in steps):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_uuid}: steps {[(s['name'], s['state']) for s in steps]}, not all {state}")
        await asyncio.sleep(0.02)


async def step_results(conn: Connection, task_uuid: UUID) -> dict[str, Any]:
    """name → the ``result`` each step stored."""
    return {s["name"]: (s["results"] or {}).get("result") for s in await task_steps(conn, task_uuid)}


@asynccontextmanager
async def running(
    url: str,
    namespaces: list[str],
    *,
    concurrency: int = 4,
    lease_seconds: int = 30,
    orchestrators: int = 1,
    workers: int = 1,
    fast_path: bool = True,
) -> AsyncIterator[None]:
    """Orchestrator(s) and worker(s) running as tasks in this event loop."""
    stop = asyncio.Event()
    services: list[Any] = [Orchestrator(url, OrchestratorConfig(env="test")) for _ in range(orchestrators)]
    services += [
        Worker(
            url,
            WorkerConfig(
                namespaces=namespaces,
                concurrency=concurrency,
                lease_seconds=lease_seconds,
                env="test",
                fast_path=fast_path,
            ),
        )
        for _ in range(workers)
    ]
    tasks = [asyncio.create_task(service.run(stop)) for service in services]
    await asyncio.sleep(0.05)
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def connection(url: str) -> Connection:
    return await connect(url)
