"""The guarded transitions: compare-and-swap, paths, denormalised columns, audit rows, races."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest

from tasker.errors import InvalidTransitionError, LostRaceError
from tasker.model.machines import StepEvent as SE
from tasker.model.machines import TaskEvent as TE
from tasker.model.states import StepState as S
from tasker.model.states import TaskState as T
from tasker.store.db import Connection, connect
from tasker.store.transitions import (
    StepAudit,
    StepChange,
    TaskChange,
    step_transition,
    step_transition_many,
    task_transition,
)
from tests.factories import insert_task_with_steps


async def _step_row(conn: Connection, step: UUID) -> dict[str, object]:
    row = await (
        await conn.execute("SELECT * FROM tasker.workflow_steps WHERE workflow_step_uuid = %s", [step])
    ).fetchone()
    assert row is not None
    return row


async def _history(conn: Connection, step: UUID) -> list[tuple[str | None, str, int, bool]]:
    rows = await (
        await conn.execute(
            "SELECT from_state, to_state, sort_key, most_recent FROM tasker.workflow_step_transitions"
            " WHERE workflow_step_uuid = %s ORDER BY sort_key",
            [step],
        )
    ).fetchall()
    return [(r["from_state"], r["to_state"], r["sort_key"], r["most_recent"]) for r in rows]


async def test_task_path_writes_one_row_per_hop_and_completes(conn: Connection) -> None:
    task, _ = await insert_task_with_steps(conn, ["a"])
    state = await task_transition(
        conn, TaskChange(task, T.PENDING, [TE.START, TE.READY_STEPS_FOUND, TE.STEPS_ENQUEUED], {"by": "test"})
    )
    assert state is T.STEPS_IN_PROCESS
    await task_transition(conn, TaskChange(task, T.STEPS_IN_PROCESS, [TE.STEP_COMPLETED, TE.ALL_STEPS_SUCCESSFUL]))
    rows = await (
        await conn.execute(
            "SELECT from_state, to_state, sort_key, most_recent, metadata->>'event' AS event"
            " FROM tasker.task_transitions WHERE task_uuid = %s ORDER BY sort_key",
            [task],
        )
    ).fetchall()
    assert [(r["from_state"], r["to_state"], r["sort_key"], r["most_recent"]) for r in rows] == [
        (None, "pending", 1, False),
        ("pending", "initializing", 2, False),
        ("initializing", "enqueuing_steps", 3, False),
        ("enqueuing_steps", "steps_in_process", 4, False),
        ("steps_in_process", "evaluating_results", 5, False),
        ("evaluating_results", "complete", 6, True),
    ]
    assert rows[1]["event"] == "start"
    task_row = await (
        await conn.execute("SELECT complete, completed_at FROM tasker.tasks WHERE task_uuid = %s", [task])
    ).fetchone()
    assert task_row is not None and task_row["complete"] and task_row["completed_at"] is not None


async def test_wrong_expected_state_is_a_lost_race_and_writes_nothing(conn: Connection) -> None:
    task, steps = await insert_task_with_steps(conn, ["a"])
    with pytest.raises(LostRaceError):
        await task_transition(conn, TaskChange(task, T.INITIALIZING, [TE.READY_STEPS_FOUND]))
    with pytest.raises(LostRaceError):
        await step_transition(conn, StepChange(steps["a"], S.ENQUEUED, [SE.START]))
    assert await _history(conn, steps["a"]) == [(None, "pending", 1, True)]


def test_illegal_events_are_refused_before_sql() -> None:
    from tasker.model.machines import step_path, task_path

    with pytest.raises(InvalidTransitionError, match="'complete' cannot take event 'cancel'"):
        task_path(T.COMPLETE, [TE.CANCEL])
    with pytest.raises(InvalidTransitionError):
        step_path(S.COMPLETE, [SE.RESOLVE_MANUALLY])


async def test_step_lifecycle_updates_columns_and_audit(conn: Connection) -> None:
    _, steps = await insert_task_with_steps(conn, ["a"])
    step = steps["a"]
    await step_transition(conn, StepChange(step, S.PENDING, [SE.ENQUEUE]))
    claimed = await step_transition(conn, StepChange(step, S.ENQUEUED, [SE.START], expected_attempts=0))
    assert claimed.attempts == 1
    row = await _step_row(conn, step)
    assert row["in_process"] is True and row["last_attempted_at"] is not None
    worker = UUID(int=7)
    await step_transition(
        conn,
        StepChange(
            step,
            S.IN_PROGRESS,
            [SE.ENQUEUE_FOR_ORCHESTRATION],
            expected_attempts=1,
            results={"result": 36},
            audit=StepAudit(True, worker, UUID(int=9), 12),
        ),
    )
    await step_transition(conn, StepChange(step, S.ENQUEUED_FOR_ORCHESTRATION, [SE.COMPLETE]))
    row = await _step_row(conn, step)
    assert row["processed"] is True and row["in_process"] is False and row["processed_at"] is not None
    assert row["results"] == {"result": 36}
    audit = await (
        await conn.execute("SELECT * FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = %s", [step])
    ).fetchall()
    assert len(audit) == 1
    assert audit[0]["worker_uuid"] == worker and audit[0]["execution_time_ms"] == 12 and audit[0]["success"]
    history = await _history(conn, step)
    assert [h[1] for h in history] == ["pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"]
    assert [h[3] for h in history].count(True) == 1


async def test_stale_claimer_cannot_store_a_result(conn: Connection) -> None:
    _, steps = await insert_task_with_steps(conn, ["a"])
    step = steps["a"]
    await step_transition(conn, StepChange(step, S.PENDING, [SE.ENQUEUE]))
    await step_transition(conn, StepChange(step, S.ENQUEUED, [SE.START], expected_attempts=0))
    # the lease ran out; a second worker takes over (attempt 2)
    second = await step_transition(
        conn, StepChange(step, S.IN_PROGRESS, [SE.LEASE_EXPIRED, SE.START], expected_attempts=1)
    )
    assert second.attempts == 2
    with pytest.raises(LostRaceError):
        await step_transition(
            conn, StepChange(step, S.IN_PROGRESS, [SE.ENQUEUE_FOR_ORCHESTRATION], expected_attempts=1)
        )


async def test_reset_for_retry_zeroes_attempts(conn: Connection) -> None:
    _, steps = await insert_task_with_steps(conn, ["a"])
    step = steps["a"]
    await step_transition(conn, StepChange(step, S.PENDING, [SE.ENQUEUE, SE.START]))
    await step_transition(conn, StepChange(step, S.IN_PROGRESS, [SE.ENQUEUE_AS_ERROR_FOR_ORCHESTRATION, SE.FAIL]))
    assert (await _step_row(conn, step))["attempts"] == 1
    await step_transition(conn, StepChange(step, S.ERROR, [SE.RESET_FOR_RETRY]))
    row = await _step_row(conn, step)
    assert row["attempts"] == 0 and row["processed"] is False


async def test_batch_reports_only_winners(conn: Connection) -> None:
    _, steps = await insert_task_with_steps(conn, ["a", "b", "c"])
    await step_transition(conn, StepChange(steps["b"], S.PENDING, [SE.ENQUEUE]))
    won = await step_transition_many(conn, [StepChange(steps[n], S.PENDING, [SE.ENQUEUE]) for n in "abc"])
    assert set(won) == {steps["a"], steps["c"]}


async def test_two_connections_racing_one_transition_exactly_one_wins(db_url: str) -> None:
    setup = await connect(db_url)
    _, steps = await insert_task_with_steps(setup, ["a"])
    step = steps["a"]
    a, b = await connect(db_url), await connect(db_url)
    try:
        async with a.transaction():
            await step_transition(a, StepChange(step, S.PENDING, [SE.ENQUEUE]))

            async def loser() -> str:
                try:
                    async with b.transaction():
                        await step_transition(b, StepChange(step, S.PENDING, [SE.ENQUEUE], {"who": "b"}))
                    return "won"
                except LostRaceError:
                    return "lost"

            contender = asyncio.create_task(loser())
            await asyncio.sleep(0.2)  # b is now blocked on a's row lock
            assert not contender.done()
        assert await contender == "lost"
        history = await _history(setup, step)
        assert [h[1] for h in history] == ["pending", "enqueued"]
    finally:
        for c in (a, b, setup):
            await c.close()
