"""Lock order: an orchestrator or operator holding a task's lock must not stall the workers storing its results.

A worker's result store inserts an audit row whose foreign key to ``tasks`` takes ``FOR KEY SHARE`` on the task
row. A task lock taken ``FOR UPDATE`` conflicts with that, so one held task lock stalled the worker's whole
completer, and an operator's action (lock, then step changes) could deadlock with a store (step changes, then the
key-share lock). The task lock is ``FOR NO KEY UPDATE``: still exclusive among orchestrators and operators.
"""

from __future__ import annotations

from uuid import UUID, uuid4

import psycopg
import pytest

from tasker.model.machines import StepEvent
from tasker.model.states import StepState
from tasker.store.db import Connection, connect
from tasker.store.tasks import task_lock, task_try_lock_many
from tasker.store.transitions import StepAudit, StepChange, step_transition, step_transition_many
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
