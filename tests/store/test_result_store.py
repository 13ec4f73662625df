"""step_result_store_many (migration 0018): a worker's result store, which completes a standard step's success
itself when it locked the step's task and the task has not ended. The rows are the same as when the completion was
a statement of its own: the stored result's transition with its audit row, then the ``complete`` transition with
the completer's metadata. Anything else (a busy task, an ended task, a result not marked) is stored only.

With a continuation, the store also moves a plain task on (the task in steps_in_process, no failed step, every
ready step pending, something ready or running): it enqueues the ready steps, claiming one per claim token for the
caller, whose next statement (step_claim_by_token) writes their held messages. Anything else is the caller's to
plan (``planned`` false)."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from tasker.engine.results import completion_of
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.router import STEP_RESULTS_QUEUE, channel, worker_queue
from tasker.model.machines import StepEvent, TaskEvent
from tasker.model.states import StepState, TaskState
from tasker.store.db import Connection, connect
from tasker.store.steps import (
    Continuation,
    HeldMessage,
    NextStep,
    StoredResults,
    completion_params,
    results_need_planning,
    step_claim_by_token_send,
    step_claim_from_queue,
)
from tasker.store.transitions import StepAudit, StepChange, TaskChange, step_transition, task_transition
from tests.factories import insert_task_with_steps

QUEUE = "store_probe_queue"


async def _claimed_step(
    conn: Connection, names: tuple[str, ...] = ("only",), edges: list[tuple[str, str]] | None = None
) -> tuple[UUID, UUID, dict[str, Any]]:
    """A task whose first step is enqueued with a message and claimed from the queue: (task, step, claim row)."""
    task, steps = await insert_task_with_steps(conn, list(names), edges)
    step = steps[names[0]]
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
    conn: Connection,
    task: UUID,
    step: UUID,
    claim: dict[str, Any],
    *,
    complete: bool,
    lock: bool = True,
    continuation: Continuation | None = None,
) -> tuple[StoredResults, UUID]:
    worker = uuid4()
    change = _result(step, claim, worker)
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
                continuation=continuation,
            )
        )()
    return stored, worker


def _result(step: UUID, claim: dict[str, Any], worker: UUID | None = None) -> StepChange:
    """The stored success of a claimed step, fenced by its claim."""
    worker = worker or uuid4()
    token = str(claim["claim_token"])
    return StepChange(
        step,
        StepState.IN_PROGRESS,
        [StepEvent.ENQUEUE_FOR_ORCHESTRATION],
        {"worker_uuid": worker, "expected_claim_token": token, "claim_token": token},
        expected_attempts=1,
        results={"success": True, "result": 42},
        audit=StepAudit(True, worker, None, 3),
    )


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
    step = uuid4()
    failure = StepChange(step, StepState.IN_PROGRESS, [StepEvent.ENQUEUE_AS_ERROR_FOR_ORCHESTRATION])
    with pytest.raises(ValueError, match="only a success"):  # its two-hop path would skip the engine's decision
        completion_params([completion_of(step, {})], [failure])


async def _started(
    conn: Connection, names: tuple[str, ...], edges: list[tuple[str, str]]
) -> tuple[UUID, UUID, dict[str, Any]]:
    """A task in steps_in_process whose first step is claimed (its namespace's queue created)."""
    task, step, claim = await _claimed_step(conn, names, edges)
    events = [TaskEvent.START, TaskEvent.READY_STEPS_FOUND, TaskEvent.STEPS_ENQUEUED]
    await task_transition(conn, TaskChange(task, TaskState.PENDING, events))
    await PgmqTransport().ensure_queue(conn, await _queue_of(conn, task))
    return task, step, claim


async def _queue_of(conn: Connection, task: UUID) -> str:
    row = await (
        await conn.execute(
            "SELECT ns.name FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid)"
            " JOIN tasker.task_namespaces ns USING (task_namespace_uuid) WHERE t.task_uuid = %s",
            [task],
        )
    ).fetchone()
    assert row is not None
    return worker_queue(row["name"])


def _continuation(queue: str, tokens: list[str]) -> Continuation:
    namespace = queue.removeprefix("worker_").removesuffix("_queue")
    return Continuation({namespace: (queue, channel(queue))}, tokens, {"worker_uuid": uuid4()}, {}, 30)


async def _states(conn: Connection, task: UUID) -> dict[str, tuple[str, dict[str, Any]]]:
    rows = await (
        await conn.execute(
            "SELECT n.name, t.to_state, t.metadata FROM tasker.workflow_steps s"
            " JOIN tasker.named_steps n USING (named_step_uuid)"
            " JOIN tasker.workflow_step_transitions t ON t.workflow_step_uuid = s.workflow_step_uuid AND t.most_recent"
            " WHERE s.task_uuid = %s",
            [task],
        )
    ).fetchall()
    return {row["name"].rsplit("_", 1)[0]: (row["to_state"], row["metadata"]) for row in rows}


async def test_a_plain_task_moves_on_and_the_next_step_is_claimed_under_the_token(conn: Connection) -> None:
    task, step, claim = await _started(conn, ("first", "second"), [("first", "second")])
    queue = await _queue_of(conn, task)
    token = "a" * 32
    continuation = _continuation(queue, [token])
    async with conn.transaction():
        stored = await (
            await PgmqTransport().store_results(
                conn,
                [_result(step, claim)],
                [HeldMessage(step, QUEUE, int(claim["msg_id"]))],
                results_queue=STEP_RESULTS_QUEUE,
                lock_tasks=[task],
                completions=[completion_of(step, {"processor_uuid": uuid4()})],
                continuation=continuation,
            )
        )()
        rows = await (await step_claim_by_token_send(conn, queue, [task], [token], visibility_seconds=30))()
    assert stored.completed == stored.planned == {step}
    [following] = stored.next
    states = await _states(conn, task)
    assert states["first"][0] == "complete"
    assert following == NextStep(following.step_uuid, queue, token)
    second_state, second_metadata = states["second"]
    assert second_state == "in_progress" and second_metadata["claim_token"] == token
    assert second_metadata["worker_uuid"] == str(continuation.claim_metadata["worker_uuid"])
    [row] = rows
    assert row["claimed"] and row["workflow_step_uuid"] == following.step_uuid and row["read_ct"] == 1
    assert row["attempts"] == 1 and row["dependency_results"] == {str(claim["name"]): {"success": True, "result": 42}}
    held = await (
        await conn.execute(
            sql.SQL("SELECT read_ct, vt > clock_timestamp() AS hidden FROM pgmq.{}").format(
                sql.Identifier(f"q_{queue}")
            )
        )
    ).fetchall()
    assert held == [{"read_ct": 1, "hidden": True}]  # held under the lease, not visible to consumers


async def test_without_a_free_slot_the_next_step_is_sent_with_a_visible_message(conn: Connection) -> None:
    task, step, claim = await _started(conn, ("first", "second"), [("first", "second")])
    queue = await _queue_of(conn, task)
    stored, _ = await _store(conn, task, step, claim, complete=True, continuation=_continuation(queue, []))
    assert stored.planned == {step}
    [following] = stored.next
    assert following.claim_token is None
    assert (await _states(conn, task))["second"][0] == "enqueued"
    visible = await (
        await conn.execute(
            sql.SQL("SELECT read_ct, message ->> 'step_uuid' AS step FROM pgmq.{}").format(sql.Identifier(f"q_{queue}"))
        )
    ).fetchall()
    assert visible == [{"read_ct": 0, "step": str(following.step_uuid)}]


async def test_the_last_step_finishes_its_task(conn: Connection) -> None:
    """Every step done and none failed: the store moves the task to complete (the route the engine would take,
    with its completion stamp and the settled signal), so the worker's last step needs no planning of its own."""
    task, step, claim = await _started(conn, ("last",), [])
    await conn.execute("LISTEN tasker_task_settled")
    stored, _ = await _store(
        conn, task, step, claim, complete=True, continuation=_continuation(await _queue_of(conn, task), ["b" * 32])
    )
    assert stored.completed == stored.planned == stored.finished == {step} and not stored.next
    row = await (
        await conn.execute(
            "SELECT t.complete, t.completed_at IS NOT NULL AS stamped, tt.to_state FROM tasker.tasks t"
            " JOIN tasker.task_transitions tt ON tt.task_uuid = t.task_uuid AND tt.most_recent WHERE t.task_uuid = %s",
            [task],
        )
    ).fetchone()
    assert row == {"complete": True, "stamped": True, "to_state": "complete"}
    settled = [note.payload async for note in conn.notifies(timeout=5, stop_after=1)]
    assert settled == [str(task)]


async def test_a_failing_task_is_left_to_the_caller(conn: Connection) -> None:
    """A failed step (the task blocks, with a DLQ entry: the engine's): the store completes the step and plans
    nothing."""
    task, step, claim = await _started(conn, ("ok", "broken", "after"), [("ok", "after")])
    broken = (await _step_ids(conn, task))["broken"]
    await step_transition(
        conn, StepChange(broken, StepState.PENDING, [StepEvent.ENQUEUE, StepEvent.START, StepEvent.FAIL])
    )
    stored, _ = await _store(
        conn, task, step, claim, complete=True, continuation=_continuation(await _queue_of(conn, task), ["c" * 32])
    )
    assert stored.completed == {step} and not stored.planned and not stored.next
    assert (await _states(conn, task))["after"][0] == "pending"


async def _step_ids(conn: Connection, task: UUID) -> dict[str, UUID]:
    rows = await (
        await conn.execute(
            "SELECT n.name, s.workflow_step_uuid FROM tasker.workflow_steps s JOIN tasker.named_steps n"
            " USING (named_step_uuid) WHERE s.task_uuid = %s",
            [task],
        )
    ).fetchall()
    return {row["name"].rsplit("_", 1)[0]: row["workflow_step_uuid"] for row in rows}


async def _store_in_one_flight(
    conn: Connection, task: UUID, step: UUID, claim: dict[str, Any], queue: str, token: str
) -> tuple[StoredResults, list[dict[str, Any]]]:
    """The worker's one flight: BEGIN, the store that must move everything on, the claim statement and COMMIT,
    sent together; the answers are read once the transaction has ended."""
    async with conn.pipeline(), conn.transaction():
        sent = await PgmqTransport().store_results(
            conn,
            [_result(step, claim)],
            [HeldMessage(step, QUEUE, int(claim["msg_id"]))],
            results_queue=STEP_RESULTS_QUEUE,
            lock_tasks=[task],
            completions=[completion_of(step, {"processor_uuid": uuid4()})],
            continuation=_continuation(queue, [token]),
            moved_on_only=True,
        )
        rows = await step_claim_by_token_send(conn, queue, [task], [token], visibility_seconds=30)
    return await sent(), await rows()


async def test_a_store_committed_in_its_flight_moves_a_plain_task_on(conn: Connection) -> None:
    task, step, claim = await _started(conn, ("first", "second"), [("first", "second")])
    queue = await _queue_of(conn, task)
    stored, [row] = await _store_in_one_flight(conn, task, step, claim, queue, "d" * 32)
    assert stored.completed == stored.planned == {step}
    states = await _states(conn, task)
    assert states["first"][0] == "complete" and states["second"][0] == "in_progress"
    assert row["claimed"] and row["workflow_step_uuid"] == stored.next[0].step_uuid
    assert await _count(conn, QUEUE) == 0 and await _count(conn, queue) == 1  # acked; the next one held


async def test_a_store_committed_in_its_flight_rolls_back_whole_when_a_task_needs_planning(conn: Connection) -> None:
    """The guard (migration 0019): a task with a failed step is the engine's to plan, which the one flight
    cannot do, so the store fails and nothing of the flight is left: not the result, its audit row, the
    completion, the acknowledgement nor a claim."""
    task, step, claim = await _started(conn, ("ok", "broken", "after"), [("ok", "after")])
    broken = (await _step_ids(conn, task))["broken"]
    await step_transition(
        conn, StepChange(broken, StepState.PENDING, [StepEvent.ENQUEUE, StepEvent.START, StepEvent.FAIL])
    )
    queue = await _queue_of(conn, task)
    before = await _trail(conn, step)
    with pytest.raises(psycopg.Error) as raised:
        await _store_in_one_flight(conn, task, step, claim, queue, "e" * 32)
    assert results_need_planning(raised.value)
    assert "planning" in str(raised.value)
    assert await _trail(conn, step) == before and before[-1]["to_state"] == "in_progress"
    audits = await (await conn.execute("SELECT count(*) AS n FROM tasker.workflow_step_result_audit")).fetchone()
    assert audits == {"n": 0}
    assert await _count(conn, QUEUE) == 1 and await _count(conn, STEP_RESULTS_QUEUE) == 0
    assert (await _states(conn, task))["after"][0] == "pending"
    # and the connection is usable again: the worker stores the results the long way on it
    stored, _ = await _store(conn, task, step, claim, complete=True, continuation=_continuation(queue, ["f" * 32]))
    assert stored.completed == {step} and not stored.planned
