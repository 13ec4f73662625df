"""Shared pieces of the worker tests: the templates, an in-process worker whose object the test can see, and
waiting on database state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tasker.store.templates import template_register_paths
from tasker.worker.process import Worker, WorkerConfig

TEMPLATES = Path(__file__).resolve().parent / "templates"
NAMESPACE = "worker_checks"


async def register_worker_templates(conn: Connection) -> None:
    await template_register_paths(conn, TEMPLATES)


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds (generous: the machine is busy)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def worker_running(url: str, **config: Any) -> AsyncIterator[Worker]:
    """One Worker on the worker_checks namespace in this event loop; yields it so tests can look inside."""
    settings: dict[str, Any] = {"namespaces": [NAMESPACE], "env": "test", **config}
    worker = Worker(url, WorkerConfig(**settings))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


async def only_step(conn: Connection, task_uuid: UUID) -> dict[str, Any]:
    steps = await task_steps(conn, task_uuid)
    assert len(steps) == 1, steps
    return steps[0]


async def transitions(conn: Connection, step_uuid: UUID) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            "SELECT to_state, metadata, most_recent FROM tasker.workflow_step_transitions"
            " WHERE workflow_step_uuid = %s ORDER BY sort_key",
            [step_uuid],
        )
    ).fetchall()
    return list(rows)


async def audit_rows(conn: Connection, step_uuid: UUID) -> list[dict[str, Any]]:
    rows = await (
        await conn.execute(
            "SELECT success, worker_uuid FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = %s",
            [step_uuid],
        )
    ).fetchall()
    return list(rows)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []
