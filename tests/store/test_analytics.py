"""The analytics functions of migration 0005 on real rows: tasks and steps moved through the state machines, then
given exact timestamps so durations are known to the second."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from tasker.model.machines import StepEvent, TaskEvent
from tasker.model.states import StepState, TaskState
from tasker.store.db import Connection
from tasker.store.transitions import StepChange, TaskChange, step_transition, task_transition
from tests.factories import insert_task_with_steps
from tests.store.test_dlq import task_in

E, SE = TaskEvent, StepEvent
TO_COMPLETE = [E.START, E.READY_STEPS_FOUND, E.STEPS_ENQUEUED, E.ALL_STEPS_COMPLETED, E.ALL_STEPS_SUCCESSFUL]
TO_ERROR = [E.START, E.READY_STEPS_FOUND, E.STEPS_ENQUEUED, E.STEP_COMPLETED, E.PERMANENT_FAILURE, E.GIVE_UP]
STEP_OK = [SE.ENQUEUE, SE.START, SE.ENQUEUE_FOR_ORCHESTRATION, SE.COMPLETE]
STEP_FAILED = [SE.ENQUEUE, SE.START, SE.ENQUEUE_AS_ERROR_FOR_ORCHESTRATION, SE.FAIL]


async def rows(conn: Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    return await (await conn.execute(query, params)).fetchall()


async def now(conn: Connection) -> datetime:
    value: datetime = (await rows(conn, "SELECT timezone('utc', now()) AS now"))[0]["now"]
    return value


async def finished_task(
    conn: Connection,
    *,
    created: datetime,
    seconds: float,
    steps: dict[str, tuple[str, float, float]],
    outcome: TaskState,
) -> tuple[UUID, dict[str, UUID]]:
    """A task created at ``created`` that ended in ``outcome`` after ``seconds``. ``steps``: name → (outcome
    'complete' | 'error' | 'pending', seconds after task creation of its first enqueue, its duration)."""
    task_uuid, step_uuids = await insert_task_with_steps(conn, list(steps))
    for name, (step_outcome, enqueued_after, duration) in steps.items():
        if step_outcome == "pending":
            continue
        events = STEP_OK if step_outcome == "complete" else STEP_FAILED
        await step_transition(conn, StepChange(step_uuids[name], StepState.PENDING, events))
        enqueued_at = created + timedelta(seconds=enqueued_after)
        await conn.execute(
            """UPDATE tasker.workflow_step_transitions
               SET created_at = CASE WHEN most_recent THEN %(end)s WHEN sort_key = 1 THEN %(created)s
                                     ELSE %(enqueued)s END
               WHERE workflow_step_uuid = %(step)s""",
            {
                "end": enqueued_at + timedelta(seconds=duration),
                "created": created,
                "enqueued": enqueued_at,
                "step": step_uuids[name],
            },
        )
    events = TO_COMPLETE if outcome is TaskState.COMPLETE else TO_ERROR
    await task_transition(conn, TaskChange(task_uuid, TaskState.PENDING, events))
    end = created + timedelta(seconds=seconds)
    await conn.execute(
        "UPDATE tasker.task_transitions SET created_at = CASE WHEN most_recent THEN %s ELSE %s END"
        " WHERE task_uuid = %s",
        [end, created, task_uuid],
    )
    await conn.execute(
        "UPDATE tasker.tasks SET created_at = %s, completed_at = CASE WHEN complete THEN %s END WHERE task_uuid = %s",
        [created, end, task_uuid],
    )
    await conn.execute(
        "UPDATE tasker.workflow_steps SET created_at = %s WHERE task_uuid = %s",
        [created, task_uuid],
    )
    return task_uuid, step_uuids


async def namespace_of(conn: Connection, task_uuid: UUID) -> str:
    found = await rows(
        conn,
        """SELECT ns.name FROM tasker.tasks t JOIN tasker.named_tasks nt USING (named_task_uuid)
           JOIN tasker.task_namespaces ns USING (task_namespace_uuid) WHERE t.task_uuid = %s""",
        [task_uuid],
    )
    return str(found[0]["name"])


class World:
    """Four recent tasks (complete, error, steps_in_process, pending) and one complete task from thirty hours ago."""

    def __init__(self) -> None:
        self.complete: UUID
        self.complete_steps: dict[str, UUID]
        self.error: UUID
        self.error_steps: dict[str, UUID]
        self.old: UUID
        self.processing: UUID
        self.pending: UUID


@pytest.fixture
async def world(conn: Connection) -> World:
    w = World()
    start = await now(conn) - timedelta(minutes=30)
    w.complete, w.complete_steps = await finished_task(
        conn,
        created=start,
        seconds=120,
        steps={"load": ("complete", 5, 10), "save": ("complete", 20, 30)},
        outcome=TaskState.COMPLETE,
    )
    w.error, w.error_steps = await finished_task(
        conn,
        created=start,
        seconds=300,
        steps={"fetch": ("error", 1, 45), "after": ("pending", 0, 0)},
        outcome=TaskState.ERROR,
    )
    w.old, _ = await finished_task(
        conn,
        created=start - timedelta(hours=30),
        seconds=4000,
        steps={"slow": ("complete", 0, 3900)},
        outcome=TaskState.COMPLETE,
    )
    w.processing, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
    w.pending, _ = await task_in(conn, TaskState.PENDING)
    return w


async def test_system_health_counts(conn: Connection, world: World) -> None:
    (counts,) = await rows(conn, "SELECT * FROM tasker.get_system_health_counts()")
    task_counts = {k: v for k, v in counts.items() if k.endswith("_tasks") and k != "total_tasks"}
    step_counts = {k: v for k, v in counts.items() if k.endswith("_steps") and k != "total_steps"}
    assert len(task_counts) == len(TaskState) and len(step_counts) == len(StepState)
    assert {k: v for k, v in task_counts.items() if v} == {
        "complete_tasks": 2,
        "error_tasks": 1,
        "steps_in_process_tasks": 1,
        "pending_tasks": 1,
    }
    assert counts["total_tasks"] == 5 == sum(task_counts.values())
    # complete: load, save, slow; error: fetch; pending: after + 2 + 2 factory steps
    assert {k: v for k, v in step_counts.items() if v} == {
        "complete_steps": 3,
        "error_steps": 1,
        "pending_steps": 5,
    }
    assert counts["total_steps"] == 9 == sum(step_counts.values())


async def test_analytics_metrics_over_recent_tasks(conn: Connection, world: World) -> None:
    since = await now(conn) - timedelta(hours=1)
    (metrics,) = await rows(conn, "SELECT * FROM tasker.get_analytics_metrics(%s)", [since])
    assert metrics == {
        "active_tasks_count": 2,  # steps_in_process and pending; complete/error are not active
        "total_namespaces_count": 5,  # the factory gives every task its own namespace and template
        "unique_task_types_count": 5,
        "system_health_score": 0.5,
        "task_throughput": 4,
        "completion_count": 1,
        "error_count": 1,
        "completion_rate": 25.0,
        "error_rate": 25.0,
        "step_throughput": 8,
        "avg_task_duration_seconds": 120.0,
        "avg_step_duration_seconds": 20.0,  # load 10 s, save 30 s; the failed step does not count
    }

    # a window that also holds the old task
    (wide,) = await rows(conn, "SELECT * FROM tasker.get_analytics_metrics(%s)", [since - timedelta(hours=31)])
    assert (wide["task_throughput"], wide["completion_count"], wide["step_throughput"]) == (5, 2, 9)
    assert wide["system_health_score"] == pytest.approx(2 / 3, abs=1e-4)
    assert wide["avg_task_duration_seconds"] == pytest.approx((120 + 4000) / 2)
    # nothing created since: no throughput, a healthy score
    (empty,) = await rows(conn, "SELECT * FROM tasker.get_analytics_metrics(%s)", [await now(conn)])
    assert (empty["task_throughput"], empty["system_health_score"], empty["completion_rate"]) == (0, 1.0, 0.0)
    assert empty["avg_task_duration_seconds"] is None


async def test_slowest_steps(conn: Connection, world: World) -> None:
    since = await now(conn) - timedelta(hours=1)
    found = await rows(conn, "SELECT * FROM tasker.get_slowest_steps(%s)", [since])
    by_step = {r["workflow_step_uuid"]: r for r in found}
    assert [r["workflow_step_uuid"] for r in found] == [
        world.error_steps["fetch"],
        world.complete_steps["save"],
        world.complete_steps["load"],
    ]
    fetch = by_step[world.error_steps["fetch"]]
    assert (fetch["duration_seconds"], fetch["current_state"], fetch["attempts"]) == (45.0, "error", 1)
    assert fetch["step_name"].startswith("fetch_")
    assert fetch["task_uuid"] == world.error
    assert fetch["task_name"] == "factory"
    assert by_step[world.complete_steps["save"]]["duration_seconds"] == 30.0
    assert by_step[world.complete_steps["load"]]["duration_seconds"] == 10.0

    limited = await rows(conn, "SELECT * FROM tasker.get_slowest_steps(%s, 1)", [since])
    assert [r["workflow_step_uuid"] for r in limited] == [world.error_steps["fetch"]]
    namespace = await namespace_of(conn, world.complete)
    filtered = await rows(conn, "SELECT * FROM tasker.get_slowest_steps(%s, 10, %s)", [since, namespace])
    assert {r["workflow_step_uuid"] for r in filtered} == set(world.complete_steps.values())
    none = await rows(
        conn, "SELECT * FROM tasker.get_slowest_steps(%s, 10, %s, 'factory', '9.9.9')", [since, namespace]
    )
    assert none == []
    # the default window (24 hours) leaves out the old task's step
    default = await rows(conn, "SELECT * FROM tasker.get_slowest_steps()")
    assert len(default) == 3
    wide = await rows(conn, "SELECT * FROM tasker.get_slowest_steps(%s)", [since - timedelta(hours=31)])
    assert wide[0]["duration_seconds"] == 3900.0


async def test_slowest_tasks(conn: Connection, world: World) -> None:
    since = await now(conn) - timedelta(hours=1)
    found = await rows(conn, "SELECT * FROM tasker.get_slowest_tasks(%s)", [since])
    assert [(r["task_uuid"], r["current_state"], r["duration_seconds"]) for r in found] == [
        (world.error, "error", 300.0),
        (world.complete, "complete", 120.0),
    ]
    error_row, complete_row = found
    assert (error_row["step_count"], error_row["completed_steps"], error_row["error_steps"]) == (2, 0, 1)
    assert (complete_row["step_count"], complete_row["completed_steps"], complete_row["error_steps"]) == (2, 2, 0)
    assert complete_row["finished_at"] - complete_row["created_at"] == timedelta(seconds=120)

    assert len(await rows(conn, "SELECT * FROM tasker.get_slowest_tasks(%s, 1)", [since])) == 1
    namespace = await namespace_of(conn, world.complete)
    filtered = await rows(conn, "SELECT * FROM tasker.get_slowest_tasks(%s, 10, %s, 'factory')", [since, namespace])
    assert [r["task_uuid"] for r in filtered] == [world.complete]
    wide = await rows(conn, "SELECT * FROM tasker.get_slowest_tasks(%s)", [since - timedelta(hours=31)])
    assert [r["task_uuid"] for r in wide] == [world.old, world.error, world.complete]
