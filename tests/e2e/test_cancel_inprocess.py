"""Cancelling a task whose handler is running: the handler learns it, the task and its open steps are cancelled,
no later step runs, and the handler's late result is recorded in the audit trail but not applied."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tasker.engine.operator import cancel_task
from tasker.store.db import Connection
from tasker.store.tasks import task_get, task_steps
from tests.e2e.runtime import create, register_fixture_templates, running


async def _steps(conn: Connection, task_uuid: UUID) -> dict[str, dict[str, Any]]:
    return {s["name"].split("_")[0]: s for s in await task_steps(conn, task_uuid)}


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_cancel_reaches_a_running_handler(conn: Connection, db_url: str, tmp_path: Path, kind: str) -> None:
    await register_fixture_templates(conn)
    marker = tmp_path / "marker"
    async with running(db_url, ["runtime_checks"]):
        created = await create(conn, "runtime_checks", f"cancellable_{kind}", {"marker_file": str(marker)})

        async def started() -> bool:
            return (await _steps(conn, created.task_uuid))["long"]["state"] == "in_progress"

        await _until(started)
        began = time.monotonic()
        assert await cancel_task(conn, task_uuid=created.task_uuid, actor="ops") == "cancelled"

        async def handler_saw_it() -> bool:
            return marker.exists() and bool(marker.read_text())

        await _until(handler_saw_it)
        assert time.monotonic() - began < 5, "the handler learned of the cancellation promptly"

        async def late_result_recorded() -> bool:
            step = (await _steps(conn, created.task_uuid))["long"]
            row = await (
                await conn.execute(
                    "SELECT count(*) AS n FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = %s",
                    [step["workflow_step_uuid"]],
                )
            ).fetchone()
            return row is not None and row["n"] == 1

        await _until(late_result_recorded)
        await asyncio.sleep(0.3)  # give a (wrong) later step time to run
    expected = "sync saw cancelled=True" if kind == "sync" else "async cancelled"
    assert marker.read_text().strip() == expected
    assert (await task_get(conn, created.task_uuid))["state"] == "cancelled"
    steps = await _steps(conn, created.task_uuid)
    assert steps["long"]["state"] == "cancelled" and steps["long"]["results"] is None, "late result not applied"
    assert steps["after"]["state"] == "cancelled" and steps["after"]["attempts"] == 0, "no later step ran"
    queued = await (await conn.execute("SELECT count(*) AS n FROM pgmq.q_worker_runtime_checks_queue")).fetchone()
    assert queued is not None and queued["n"] == 0, "the cancelled step's message was acknowledged"
