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


async def test_an_operator_resumes_a_task_that_staleness_moved_to_error(conn: Connection, db_url: str) -> None:
    from tasker.engine.operator import step_action
    from tasker.messaging.pgmq import PgmqTransport
    from tasker.store.dlq import dlq_entries_for_task
    from tasker.store.tasks import task_steps
    from tests.e2e.runtime import running

    await register_fixture_templates(conn)
    created = await create(conn, "runtime_checks", "sleepy_chain", {"sleep_seconds": 0})
    await conn.execute(
        "UPDATE tasker.task_transitions SET created_at = created_at - interval '2 hours'"
        " WHERE task_uuid = %s AND most_recent",
        [created.task_uuid],
    )
    config = OrchestratorConfig(env="test", staleness=dataclasses.replace(StalenessDefaults(), interval_seconds=0.2))
    stop = asyncio.Event()
    sweeping = asyncio.create_task(Orchestrator(db_url, config).run(stop))
    try:
        assert (await wait_settled(conn, created.task_uuid, timeout=10))["state"] == "error"
    finally:
        stop.set()
        await sweeping
    first = {s["name"]: s for s in await task_steps(conn, created.task_uuid)}["sleepy_first"]
    await step_action(
        conn,
        PgmqTransport(),
        task_uuid=created.task_uuid,
        step_uuid=first["workflow_step_uuid"],
        action="resolve_manually",
        actor="ops",
        reason="done by hand",
    )
    async with running(db_url, ["runtime_checks"]):
        task = await wait_settled(conn, created.task_uuid)
    assert task["state"] == "complete", "the task left error and ran its remaining step"
    [entry] = await dlq_entries_for_task(conn, created.task_uuid)
    assert entry["resolution_status"] == "manually_resolved" and entry["resolved_by"] == "ops"
