"""``tasker task create|get|steps|wait``: tasks straight from the database."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.table import Table

from tasker.cli.common import console, database_url, handle_errors, print_json, run, settings
from tasker.engine.task_requests import create_task
from tasker.errors import InvalidTaskRequestError
from tasker.messaging.pgmq import PgmqTransport
from tasker.model.requests import TaskRequest
from tasker.model.states import TASK_TERMINAL, TaskState
from tasker.store.db import connection
from tasker.store.tasks import task_get, task_steps

app = typer.Typer(no_args_is_help=True, help="Tasks: create, inspect, wait")
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _context(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidTaskRequestError(f"--context is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidTaskRequestError("--context must be a JSON object")
    return value


@app.command("create")
@handle_errors
def create(
    namespace: str,
    name: str,
    version: Annotated[str, typer.Option()] = "1.0.0",
    context: Annotated[str, typer.Option(help="the task's input as a JSON object")] = "{}",
    initiator: Annotated[str | None, typer.Option()] = None,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a task from a registered template; its first steps are enqueued when this returns."""
    request = TaskRequest(
        namespace=namespace,
        name=name,
        version=version,
        context=_context(context),
        initiator=initiator,
        idempotency_key=idempotency_key,
    )

    async def _create() -> dict[str, Any]:
        async with connection(database_url()) as conn:
            created = await create_task(conn, PgmqTransport(), request, env=settings().env)
        return {
            "task_uuid": str(created.task_uuid),
            "state": created.state,
            "steps": len(created.step_uuids),
            "correlation_id": str(created.correlation_id),
        }

    row = run(_create())
    if as_json:
        print_json(row)
    else:
        console.print(f"created task {row['task_uuid']} ({row['state']}, {row['steps']} steps)")


async def _load(task_uuid: UUID) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with connection(database_url()) as conn:
        return await task_get(conn, task_uuid), await task_steps(conn, task_uuid)


def _steps_table(steps: list[dict[str, Any]]) -> Table:
    table = Table("step", "state", "attempts", "result")
    for step in steps:
        result = json.dumps((step["results"] or {}).get("result"), default=str)
        table.add_row(step["name"], step["state"], f"{step['attempts']}/{step['max_attempts']}", result[:60])
    return table


@app.command("get")
@handle_errors
def get(task_uuid: UUID, as_json: JsonOption = False) -> None:
    """Show a task and its steps."""
    task, steps = run(_load(task_uuid))
    if as_json:
        print_json({**task, "steps": steps})
        return
    console.print(
        f"task {task['task_uuid']} {task['namespace_name']}/{task['task_name']}:{task['task_version']}"
        f" [bold]{task['state']}[/bold]"
    )
    console.print(_steps_table(steps))


@app.command("wait")
@handle_errors
def wait(task_uuid: UUID, timeout: Annotated[float, typer.Option(help="seconds")] = 300.0) -> None:
    """Wait until the task ends; exit status 0 when complete, 1 otherwise."""

    async def _wait() -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        async with connection(database_url()) as conn:
            while True:
                task = await task_get(conn, task_uuid)
                state = TaskState(task["state"])
                if state in TASK_TERMINAL or state is TaskState.BLOCKED_BY_FAILURES or time.monotonic() > deadline:
                    return task
                await asyncio.sleep(0.1)

    task = run(_wait())
    console.print(f"task {task_uuid}: {task['state']}")
    if task["state"] != TaskState.COMPLETE:
        raise typer.Exit(1)
