"""Checkpoint resume after kill -9 of the worker process (orchestrator and workers as real processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tests.e2e.processes import services, start, stop
from tests.e2e.runtime import create, register_fixture_templates, wait_settled


async def _checkpoint_cursor(conn: Connection, task_uuid: object) -> int | None:
    row = await (
        await conn.execute(
            "SELECT (s.checkpoint ->> 'cursor')::int AS cursor FROM tasker.workflow_steps s"
            " JOIN tasker.named_steps n USING (named_step_uuid) WHERE s.task_uuid = %s AND n.name = %s",
            [task_uuid, "checkpoint_batch_001"],
        )
    ).fetchone()
    return row["cursor"] if row else None


async def test_checkpoint_resume_after_kill_9(conn: Connection, db_url: str) -> None:
    await register_fixture_templates(conn)
    # the first attempt checkpoints at 25 and 50, then hangs at item 60 until it is killed
    context = {"total_items": 100, "items_per_checkpoint": 25, "fail_at": 60, "mode": "hang", "item_sleep": 0.01}
    worker = ["worker", "-n", "dynamic_checkpoint", "--lease-seconds", "2"]
    with services(db_url, ["orchestrator"]):
        doomed = start(db_url, *worker, log_name="doomed-checkpoint")
        try:
            created = await create(conn, "dynamic_checkpoint", "checkpoint_resume", context)
            deadline = time.monotonic() + 30
            while await _checkpoint_cursor(conn, created.task_uuid) != 50:
                assert time.monotonic() < deadline, "the worker never checkpointed at 50"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # well into the hang at item 60
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
        finally:
            stop(doomed)
        assert await _checkpoint_cursor(conn, created.task_uuid) == 50
        with services(db_url, worker):
            task = await wait_settled(conn, created.task_uuid, timeout=60)
    assert task["state"] == "complete"
    step = next(s for s in await task_steps(conn, created.task_uuid) if s["name"] == "checkpoint_batch_001")
    result = step["results"]["result"]
    assert (result["attempt"], result["resumed_from"], result["sum"], result["distinct_items"]) == (2, 50, 4950, 100)
    assert [(h["cursor"], h["attempt"]) for h in step["checkpoint"]["history"]] == [(25, 1), (50, 1), (75, 2), (100, 2)]
