"""step_claim_from_queue: a worker's read and claim in one statement. First deliveries of enqueued steps are
claimed (each under its own token, with the handler context); everything else comes back unclaimed for the worker
to look at, exactly as the two-statement path (queue_read, then step_claim_many) decides."""

from __future__ import annotations

import re
from uuid import UUID, uuid4

from tasker.messaging.pgmq import PgmqTransport
from tasker.model.machines import StepEvent
from tasker.model.states import StepState
from tasker.store.db import Connection
from tasker.store.steps import step_claim_from_queue
from tasker.store.transitions import StepChange, step_transition
from tests.factories import insert_task_with_steps

QUEUE = "claim_probe_queue"


async def _enqueued_steps(conn: Connection, names: list[str]) -> tuple[UUID, dict[str, UUID]]:
    task, steps = await insert_task_with_steps(conn, names)
    for step in steps.values():
        await step_transition(conn, StepChange(step, StepState.PENDING, [StepEvent.ENQUEUE]))
    return task, steps


async def _send(conn: Connection, task: UUID, steps: list[UUID]) -> PgmqTransport:
    transport = PgmqTransport()
    await transport.ensure_queue(conn, QUEUE)
    bodies = [{"task_uuid": str(task), "step_uuid": str(step), "correlation_id": str(uuid4())} for step in steps]
    await transport.send_many(conn, QUEUE, bodies)
    return transport


async def _claim(conn: Connection, worker: UUID, count: int = 10) -> list[dict[str, object]]:
    return await step_claim_from_queue(
        conn, QUEUE, max_messages=count, visibility_seconds=30, metadata={"worker_uuid": str(worker)}
    )


async def test_first_deliveries_are_claimed_with_their_context_and_token(conn: Connection) -> None:
    task, steps = await _enqueued_steps(conn, ["a", "b"])
    await _send(conn, task, [steps["a"], steps["b"]])
    worker = uuid4()
    rows = await _claim(conn, worker)
    assert [row["claimed"] for row in rows] == [True, True]
    assert {row["workflow_step_uuid"] for row in rows} == set(steps.values())
    tokens = {row["claim_token"] for row in rows}
    assert len(tokens) == 2 and all(re.fullmatch("[0-9a-f]{32}", str(token)) for token in tokens)
    assert all(row["attempts"] == 1 and str(row["name"])[:2] in {"a_", "b_"} for row in rows)
    trail = await (
        await conn.execute(
            "SELECT metadata FROM tasker.workflow_step_transitions WHERE to_state = 'in_progress' AND most_recent"
            " AND workflow_step_uuid = ANY(%s)",
            [list(steps.values())],
        )
    ).fetchall()
    assert {t["metadata"]["worker_uuid"] for t in trail} == {str(worker)}
    assert {t["metadata"]["claim_token"] for t in trail} == tokens
    assert all(t["metadata"]["correlation_id"] for t in trail)


async def test_a_second_message_for_the_same_step_is_left_to_the_worker(conn: Connection) -> None:
    task, steps = await _enqueued_steps(conn, ["a"])
    await _send(conn, task, [steps["a"], steps["a"]])
    rows = await _claim(conn, uuid4())
    assert [row["claimed"] for row in rows] == [True, False]  # the older message claims, the other is a lost race
    assert rows[1]["message"]["step_uuid"] == str(steps["a"]) and rows[1]["read_ct"] == 1


async def test_redeliveries_and_steps_that_moved_on_are_not_claimed(conn: Connection) -> None:
    task, steps = await _enqueued_steps(conn, ["redelivered", "cancelled"])
    await step_transition(conn, StepChange(steps["cancelled"], StepState.ENQUEUED, [StepEvent.CANCEL]))
    await _send(conn, task, [steps["redelivered"], steps["cancelled"]])
    await conn.execute(
        f"UPDATE pgmq.q_{QUEUE} SET read_ct = 1 WHERE message ->> 'step_uuid' = %s", [str(steps["redelivered"])]
    )
    rows = await _claim(conn, uuid4())
    assert [row["claimed"] for row in rows] == [False, False]
    assert {row["read_ct"] for row in rows} == {1, 2}
    state = await (
        await conn.execute(
            "SELECT to_state FROM tasker.workflow_step_transitions WHERE most_recent AND workflow_step_uuid = %s",
            [steps["redelivered"]],
        )
    ).fetchone()
    assert state is not None and state["to_state"] == "enqueued", "a redelivery is decided by the worker, not here"


async def test_an_empty_queue_claims_nothing(conn: Connection) -> None:
    await PgmqTransport().ensure_queue(conn, QUEUE)
    assert await _claim(conn, uuid4()) == []
