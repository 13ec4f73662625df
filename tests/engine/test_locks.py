"""Lock order: an orchestrator or operator holding a task's lock must not stall the workers storing its results.

A worker's result store inserts an audit row whose foreign key to ``tasks`` takes ``FOR KEY SHARE`` on the task
row. A task lock taken ``FOR UPDATE`` conflicts with that, so one held task lock stalled the worker's whole
completer, and an operator's action (lock, then step changes) could deadlock with a store (step changes, then the
key-share lock). The task lock is ``FOR NO KEY UPDATE``: still exclusive among orchestrators and operators.
"""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import psycopg
import pytest

from tasker.engine.operator import cancel_task
from tasker.model.machines import StepEvent, TaskEvent
from tasker.model.states import StepState, TaskState
from tasker.store.db import Connection, connect
from tasker.store.tasks import task_lock, task_try_lock_many
from tasker.store.transitions import (
    StepAudit,
    StepChange,
    TaskChange,
    step_transition,
    step_transition_many,
    task_transition,
)
from tests.factories import insert_task_with_steps


async def _in_progress(conn: Connection, step: UUID) -> None:
    for state, event in [(StepState.PENDING, StepEvent.ENQUEUE), (StepState.ENQUEUED, StepEvent.START)]:
        await step_transition(conn, StepChange(step, state, [event]))


async def test_a_held_task_lock_does_not_block_a_result_store(db_url: str) -> None:
    holder = await connect(db_url)
    worker = await connect(db_url)
    try:
        task, steps = await insert_task_with_steps(holder, ["a"])
        await _in_progress(holder, steps["a"])
        async with holder.transaction():
            await task_lock(holder, task)
            # the worker stores the step's result (with its audit row) while the task is locked; before the fix it
            # waited for the lock (here: lock_timeout fails it instead of hanging the test)
            await worker.execute("SET lock_timeout = '3s'")
            change = StepChange(
                steps["a"],
                StepState.IN_PROGRESS,
                [StepEvent.ENQUEUE_FOR_ORCHESTRATION],
                results={"success": True},
                audit=StepAudit(True, uuid4(), uuid4(), 5),
            )
            async with worker.transaction():
                won = await step_transition_many(worker, [change])
            assert steps["a"] in won
    finally:
        await holder.close()
        await worker.close()


async def test_task_locks_still_exclude_each_other(db_url: str) -> None:
    first = await connect(db_url)
    second = await connect(db_url)
    try:
        task, _ = await insert_task_with_steps(first, ["a"])
        async with first.transaction():
            await task_lock(first, task)
            async with second.transaction():
                assert await task_try_lock_many(second, [task]) == set()
            await second.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                async with second.transaction():
                    await task_lock(second, task)
    finally:
        await first.close()
        await second.close()


async def _wait_until_blocked(conn: Connection, application_name: str) -> None:
    """Until a backend of ``application_name`` waits for a lock (database state, not elapsed time)."""
    for _ in range(2000):
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                [application_name],
            )
        ).fetchone()
        if row is not None and row["n"] > 0:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{application_name} never waited for the lock")


async def test_cancel_retries_a_step_a_worker_moved_meanwhile(db_url: str) -> None:
    """The worker stores a result while the cancel waits on the step: the cancel retries on the new state, so no
    step of a cancelled task is left open (and its result is never applied)."""
    setup = await connect(db_url)
    worker = await connect(db_url)
    operator = await connect(db_url, application_name="tasker-test-operator")
    try:
        task, steps = await insert_task_with_steps(setup, ["a"])
        await task_transition(setup, TaskChange(task, TaskState.PENDING, [TaskEvent.START]))
        await _in_progress(setup, steps["a"])
        async with worker.transaction():
            await step_transition(
                worker,
                StepChange(steps["a"], StepState.IN_PROGRESS, [StepEvent.ENQUEUE_FOR_ORCHESTRATION], results={}),
            )
            cancelling = asyncio.create_task(cancel_task(operator, task_uuid=task, actor="ops"))
            await _wait_until_blocked(setup, "tasker-test-operator")
        assert await cancelling is TaskState.CANCELLED
        row = await (
            await setup.execute(
                "SELECT to_state FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = %s AND most_recent",
                [steps["a"]],
            )
        ).fetchone()
        assert row is not None and row["to_state"] == "cancelled", "a step of the cancelled task stayed open"
    finally:
        for c in (setup, worker, operator):
            await c.close()
