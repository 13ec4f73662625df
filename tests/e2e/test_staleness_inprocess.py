"""The orchestrator's staleness sweep moves a stuck task to the dead-letter queue and to `error`."""

from __future__ import annotations

import asyncio
import dataclasses

from tasker.engine.orchestrator import Orchestrator, OrchestratorConfig
from tasker.engine.staleness import StalenessDefaults
from tasker.store.db import Connection
from tasker.store.tasks import task_get
from tests.e2e.runtime import create, register_fixture_templates, wait_settled


async def test_orchestrator_sweeps_a_stuck_task_into_the_dlq(conn: Connection, db_url: str) -> None:
    await register_fixture_templates(conn)
    created = await create(conn, "runtime_checks", "sleepy_chain", {"sleep_seconds": 0})  # no worker runs it
    await conn.execute(
        "UPDATE tasker.task_transitions SET created_at = created_at - interval '2 hours'"
        " WHERE task_uuid = %s AND most_recent",
        [created.task_uuid],
    )
    config = OrchestratorConfig(
        env="test",
        staleness=dataclasses.replace(StalenessDefaults(), steps_in_process_minutes=30, interval_seconds=0.2),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(Orchestrator(db_url, config).run(stop))
    try:
        task = await wait_settled(conn, created.task_uuid, timeout=10)
    finally:
        stop.set()
        await running
    assert task["state"] == "error"
    entry = await (
        await conn.execute(
            "SELECT dlq_reason, original_state, resolution_status FROM tasker.tasks_dlq WHERE task_uuid = %s",
            [created.task_uuid],
        )
    ).fetchone()
    assert entry == {
        "dlq_reason": "staleness_timeout",
        "original_state": "steps_in_process",
        "resolution_status": "pending",
    }
    assert (await task_get(conn, created.task_uuid))["complete"] is False
