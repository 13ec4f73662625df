"""step_result_store_many (migration 0018): a worker's result store, which completes a standard step's success
itself when it locked the step's task and the task has not ended. The rows are the same as when the completion was
a statement of its own: the stored result's transition with its audit row, then the ``complete`` transition with
the completer's metadata. Anything else (a busy task, an ended task, a result not marked) is stored only."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from psycopg import sql

from tasker.engine.results import completion_of
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.router import STEP_RESULTS_QUEUE
from tasker.model.machines import StepEvent, TaskEvent
from tasker.model.states import StepState, TaskState
from tasker.store.db import Connection, connect
from tasker.store.steps import HeldMessage, StoredResults, completion_params, step_claim_from_queue
from tasker.store.transitions import StepAudit, StepChange, TaskChange, step_transition, task_transition
from tests.factories import insert_task_with_steps

QUEUE = "store_probe_queue"


async def _claimed_step(conn: Connection) -> tuple[UUID, UUID, dict[str, Any]]:
    """A task with one step, enqueued with a message and claimed from the queue: (task, step, claim row)."""
    task, steps = await insert_task_with_steps(conn, ["only"])
    step = steps["only"]
    await step_transition(conn, StepChange(step, StepState.PENDING, [StepEvent.ENQUEUE]))
    transport = PgmqTransport()
    await transport.ensure_queue(conn, QUEUE)
    await transport.ensure_queue(conn, STEP_RESULTS_QUEUE)
    await transport.send_many(conn, QUEUE, [{"task_uuid": str(task), "step_uuid": str(step)}])
    [row] = await step_claim_from_queue(
        conn, QUEUE, max_messages=1, visibility_seconds=30, metadata={"worker_uuid": str(uuid4())}
    )
    assert row["claimed"]
    return task, step, row


async def _store(
    conn: Connection, task: UUID, step: UUID, claim: dict[str, Any], *, complete: bool, lock: bool = True
) -> tuple[StoredResults, UUID]:
    worker = uuid4()
    token = str(claim["claim_token"])
    change = StepChange(
        step,
        StepState.IN_PROGRESS,
        [StepEvent.ENQUEUE_FOR_ORCHESTRATION],
        {"worker_uuid": worker, "expected_claim_token": token, "claim_token": token},
        expected_attempts=1,
        results={"success": True, "result": 42},
        audit=StepAudit(True, worker, None, 3),
    )
    completion = completion_of(step, {"processor_uuid": worker}) if complete else None
    async with conn.transaction():
        stored = await (
            await PgmqTransport().store_results(
                conn,
                [change],
                [HeldMessage(step, QUEUE, int(claim["msg_id"]))],
                results_queue=STEP_RESULTS_QUEUE,
                lock_tasks=[task if lock else None],
                completions=[completion],
            )
        )()
    return stored, worker


async def _trail(conn: Connection, step: UUID) -> list[dict[str, Any]]:
    return await (
        await conn.execute(
            """
            SELECT t.to_state, t.from_state, t.most_recent, t.metadata, a.success AS audited
            FROM tasker.workflow_step_transitions t
            LEFT JOIN tasker.workflow_step_result_audit a
                   ON a.workflow_step_transition_uuid = t.workflow_step_transition_uuid
            WHERE t.workflow_step_uuid = %s ORDER BY t.sort_key
            """,
            [step],
        )
    ).fetchall()


async def _count(conn: Connection, table: str) -> int:
    statement = sql.SQL("SELECT count(*) AS n FROM pgmq.{}").format(sql.Identifier(f"q_{table}"))
    row = await (await conn.execute(statement)).fetchone()
    assert row is not None
    return int(row["n"])


async def test_a_marked_success_on_a_locked_task_is_stored_and_completed(conn: Connection) -> None:
    task, step, claim = await _claimed_step(conn)
    stored, worker = await _store(conn, task, step, claim, complete=True)
    assert stored.stored == stored.here == stored.completed == {step}
    trail = await _trail(conn, step)
    assert [t["to_state"] for t in trail] == [
        "pending",
        "enqueued",
        "in_progress",
        "enqueued_for_orchestration",
        "complete",
    ]
    stored_row, complete_row = trail[-2], trail[-1]
    assert stored_row["audited"] is True and complete_row["audited"] is None  # the audit row is the result's
    assert stored_row["metadata"]["worker_uuid"] == str(worker)
    assert complete_row["metadata"]["processor_uuid"] == str(worker)
    assert (
        complete_row["metadata"]["event"] == "complete" and complete_row["from_state"] == "enqueued_for_orchestration"
    )
    assert [t["most_recent"] for t in trail].count(True) == 1 and complete_row["most_recent"]
    step_row = await (
        await conn.execute(
            "SELECT processed, in_process, results FROM tasker.workflow_steps WHERE workflow_step_uuid = %s", [step]
        )
    ).fetchone()
    assert step_row == {"processed": True, "in_process": False, "results": {"success": True, "result": 42}}
    assert await _count(conn, QUEUE) == 0  # the step's message is acknowledged
    assert await _count(conn, STEP_RESULTS_QUEUE) == 0  # and nothing is announced


async def test_a_busy_task_gets_its_result_announced_not_completed(conn: Connection, db_url: str) -> None:
    task, step, claim = await _claimed_step(conn)
    other = await connect(db_url)
    try:
        async with other.transaction():
            await other.execute("SELECT 1 FROM tasker.tasks WHERE task_uuid = %s FOR NO KEY UPDATE", [task])
            stored, _ = await _store(conn, task, step, claim, complete=True)
    finally:
        await other.close()
    assert stored.stored == {step} and not stored.here and not stored.completed
    assert (await _trail(conn, step))[-1]["to_state"] == "enqueued_for_orchestration"
    assert await _count(conn, STEP_RESULTS_QUEUE) == 1


async def test_an_ended_task_completes_nothing(conn: Connection) -> None:
    """The store reads the task's state after taking its lock: a task that ended keeps the result on record
    for the orchestrator to settle (it cancels the step), and the store completes nothing."""
    task, step, claim = await _claimed_step(conn)
    await task_transition(conn, TaskChange(task, TaskState.PENDING, [TaskEvent.CANCEL]))
    stored, _ = await _store(conn, task, step, claim, complete=True)
    assert stored.here == {step} and not stored.completed
    assert (await _trail(conn, step))[-1]["to_state"] == "enqueued_for_orchestration"


@pytest.mark.parametrize("lock", [True, False])
async def test_an_unmarked_result_or_one_not_kept_here_is_stored_only(conn: Connection, lock: bool) -> None:
    task, step, claim = await _claimed_step(conn)
    stored, _ = await _store(conn, task, step, claim, complete=not lock, lock=lock)
    assert stored.stored == {step} and not stored.completed
    assert stored.here == ({step} if lock else set())
    assert (await _trail(conn, step))[-1]["to_state"] == "enqueued_for_orchestration"


def test_only_a_completion_from_the_stored_state_can_ride_along() -> None:
    wrong = StepChange(uuid4(), StepState.IN_PROGRESS, [StepEvent.COMPLETE])
    with pytest.raises(ValueError, match="enqueued_for_orchestration"):
        completion_params([wrong])
    params = completion_params([None, completion_of(uuid4(), {})])
    assert params["complete"] == [False, True] and params["complete_metadata"][0] is None
