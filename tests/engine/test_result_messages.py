"""Result messages that cannot be applied now, or ever: a busy task, a task that does not exist, a malformed
message that fails every time, and a result whose task was cancelled on the way."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import uuid4

from tasker.engine.orchestrator import Orchestrator, OrchestratorConfig
from tasker.engine.results import apply_results
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.router import STEP_RESULTS_QUEUE
from tasker.model.machines import StepEvent, TaskEvent
from tasker.model.states import StepState, TaskState
from tasker.store.db import Connection, connect
from tasker.store.tasks import task_lock
from tasker.store.template_cache import TemplateCache
from tasker.store.transitions import StepChange, TaskChange, step_transition, task_transition
from tests.e2e.runtime import create, register_fixture_templates

QUEUE_TABLE = f"pgmq.q_{STEP_RESULTS_QUEUE}"


async def _one(conn: Connection, query: str, *params: Any) -> dict[str, Any]:
    row = await (await conn.execute(query, list(params))).fetchone()
    assert row is not None
    return row


async def _send(conn: Connection, body: dict[str, Any]) -> None:
    transport = PgmqTransport()
    await transport.ensure_queue(conn, STEP_RESULTS_QUEUE)
    await transport.send_many(conn, STEP_RESULTS_QUEUE, [body])


async def _receive(conn: Connection) -> list[Any]:
    return await PgmqTransport().receive(conn, STEP_RESULTS_QUEUE, max_messages=10, visibility_seconds=30)


async def test_a_busy_tasks_result_comes_back_later_not_at_once(db_url: str, conn: Connection) -> None:
    await register_fixture_templates(conn)
    created = await create(conn, "test_scenarios", "success_only", {})
    [step] = created.step_uuids.values()
    await _send(conn, {"task_uuid": str(created.task_uuid), "step_uuid": str(step), "correlation_id": None})
    holder = await connect(db_url)
    try:
        async with holder.transaction():
            await task_lock(holder, created.task_uuid)  # another orchestrator is busy with this task
            applied = await apply_results(
                conn, PgmqTransport(), TemplateCache("test"), await _receive(conn), processor_uuid=uuid4()
            )
    finally:
        await holder.close()
    assert applied == []
    row = await _one(conn, f"SELECT count(*) AS n, bool_and(vt > clock_timestamp()) AS hidden FROM {QUEUE_TABLE}")
    assert row["n"] == 1 and row["hidden"], "the busy task's result was handed back visible at once (a hot loop)"


async def test_a_result_of_a_task_that_does_not_exist_is_dropped(conn: Connection) -> None:
    await _send(conn, {"task_uuid": str(uuid4()), "step_uuid": str(uuid4()), "correlation_id": None})
    applied = await apply_results(
        conn, PgmqTransport(), TemplateCache("test"), await _receive(conn), processor_uuid=uuid4()
    )
    assert applied == []
    assert (await _one(conn, f"SELECT count(*) AS n FROM {QUEUE_TABLE}"))["n"] == 0


async def test_a_result_of_a_cancelled_task_completes_nothing(conn: Connection) -> None:
    await register_fixture_templates(conn)
    created = await create(conn, "test_scenarios", "success_only", {})
    [step] = created.step_uuids.values()
    # the step finished and its result is on the way when the task is cancelled (the cancel lost the race for
    # this step, so the step is still open)
    await step_transition(conn, StepChange(step, StepState.ENQUEUED, [StepEvent.START]))
    await step_transition(
        conn,
        StepChange(step, StepState.IN_PROGRESS, [StepEvent.ENQUEUE_FOR_ORCHESTRATION], results={"success": True}),
    )
    await task_transition(conn, TaskChange(created.task_uuid, TaskState.STEPS_IN_PROCESS, [TaskEvent.CANCEL]))
    await _send(conn, {"task_uuid": str(created.task_uuid), "step_uuid": str(step), "correlation_id": None})
    await apply_results(conn, PgmqTransport(), TemplateCache("test"), await _receive(conn), processor_uuid=uuid4())
    row = await _one(
        conn,
        "SELECT to_state FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = %s AND most_recent",
        step,
    )
    assert row["to_state"] == "cancelled"
    task = await _one(
        conn, "SELECT to_state FROM tasker.task_transitions WHERE task_uuid = %s AND most_recent", created.task_uuid
    )
    assert task["to_state"] == "cancelled"


async def test_a_result_that_keeps_failing_is_dead_lettered_with_a_dlq_entry(db_url: str, conn: Connection) -> None:
    await register_fixture_templates(conn)
    created = await create(conn, "test_scenarios", "success_only", {})
    await _send(conn, {"task_uuid": str(created.task_uuid), "step_uuid": "not-a-uuid", "correlation_id": None})
    config = OrchestratorConfig(
        env="test", staleness_enabled=False, result_max_failures=3, result_failure_backoff_seconds=0.01
    )
    stop = asyncio.Event()
    service = asyncio.create_task(Orchestrator(db_url, config).run(stop))
    try:
        deadline = time.monotonic() + 60
        while True:
            entry = await (
                await conn.execute("SELECT * FROM tasker.tasks_dlq WHERE task_uuid = %s", [created.task_uuid])
            ).fetchone()
            if entry is not None or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await service
    assert entry is not None, "the poison message was never dead-lettered"
    assert entry["dlq_reason"] == "manual_dlq"
    assert entry["metadata"]["detection_method"] == "poison_result_message"
    assert entry["metadata"]["failures"] == 3
    assert (await _one(conn, f"SELECT count(*) AS n FROM {QUEUE_TABLE}"))["n"] == 0
    archived = await _one(
        conn, f"SELECT count(*) AS n, max(message ->> 'last_error') AS error FROM pgmq.a_{STEP_RESULTS_QUEUE}"
    )
    assert archived["n"] == 1 and "UUID" in archived["error"], "the archived message keeps its error"
