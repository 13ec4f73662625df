"""The orchestrator's staleness sweep moves a stuck task to the dead-letter queue and to `error`."""

from __future__ import annotations

import asyncio
import dataclasses
from uuid import UUID

from tasker.engine.operator import retry_failed_steps
from tasker.engine.orchestrator import Orchestrator, OrchestratorConfig
from tasker.engine.staleness import StalenessDefaults, sweep_stale_tasks
from tasker.messaging.pgmq import PgmqTransport
from tasker.model.states import StepState
from tasker.store.db import Connection
from tasker.store.tasks import task_get, task_steps
from tests.e2e.runtime import create, register_fixture_templates, running, wait_settled


async def age(conn: Connection, task_uuid: UUID, *, minutes: float, steps_minutes: float | None = None) -> None:
    """Move the task's current transition ``minutes`` into the past, and its steps' transitions ``steps_minutes``
    (default: as far)."""
    await conn.execute(
        "UPDATE tasker.task_transitions SET created_at = created_at - make_interval(secs => %s * 60)"
        " WHERE task_uuid = %s AND most_recent",
        [minutes, task_uuid],
    )
    await conn.execute(
        "UPDATE tasker.workflow_step_transitions st SET created_at = st.created_at - make_interval(secs => %s * 60)"
        " FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = st.workflow_step_uuid AND s.task_uuid = %s",
        [minutes if steps_minutes is None else steps_minutes, task_uuid],
    )


ONE_MINUTE = StalenessDefaults(
    waiting_for_dependencies_minutes=1, waiting_for_retry_minutes=1, steps_in_process_minutes=1, interval_seconds=0.2
)


async def test_a_task_whose_steps_keep_progressing_is_not_stale(conn: Connection, db_url: str) -> None:
    """Ten minutes in steps_in_process (past a one-minute threshold) with a step finished seconds ago: not stale,
    however long the workflow runs; the same task without that progress is swept."""
    await register_fixture_templates(conn)
    progressing = await create(conn, "runtime_checks", "sleepy_chain", {"sleep_seconds": 0})
    await age(conn, progressing.task_uuid, minutes=10, steps_minutes=0.1)
    report = await sweep_stale_tasks(conn, defaults=ONE_MINUTE, dry_run=False, batch_size=10, processor_uuid=None)
    assert report.outcomes == [] or all(o.task_uuid != progressing.task_uuid for o in report.outcomes)
    assert (await task_get(conn, progressing.task_uuid))["state"] == "steps_in_process"

    await age(conn, progressing.task_uuid, minutes=0, steps_minutes=2)  # now nothing moved for two minutes
    report = await sweep_stale_tasks(conn, defaults=ONE_MINUTE, dry_run=False, batch_size=10, processor_uuid=None)
    assert [o.task_uuid for o in report.outcomes] == [progressing.task_uuid]
    assert (await task_get(conn, progressing.task_uuid))["state"] == "error"


async def test_an_operator_resumes_a_stale_task_that_has_no_failed_step(conn: Connection, db_url: str) -> None:
    await register_fixture_templates(conn)
    created = await create(conn, "runtime_checks", "sleepy_chain", {"sleep_seconds": 0})
    await age(conn, created.task_uuid, minutes=120)
    await sweep_stale_tasks(conn, defaults=ONE_MINUTE, dry_run=False, batch_size=10, processor_uuid=None)
    assert (await task_get(conn, created.task_uuid))["state"] == "error"
    assert not [s for s in await task_steps(conn, created.task_uuid) if s["state"] == StepState.ERROR]
    assert await retry_failed_steps(conn, PgmqTransport(), task_uuid=created.task_uuid, actor="ops") == []
    async with running(db_url, ["runtime_checks"]):
        task = await wait_settled(conn, created.task_uuid)
    assert task["state"] == "complete", "the stale task resumed and ran to the end"


async def test_orchestrator_sweeps_a_stuck_task_into_the_dlq(conn: Connection, db_url: str) -> None:
    await register_fixture_templates(conn)
    created = await create(conn, "runtime_checks", "sleepy_chain", {"sleep_seconds": 0})  # no worker runs it
    await age(conn, created.task_uuid, minutes=120)  # nothing moved for two hours
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
    await age(conn, created.task_uuid, minutes=120)  # nothing moved for two hours
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
