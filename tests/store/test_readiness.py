"""The readiness SQL functions of migration 0003, checked against rows built by hand.

Each test builds its own tasks, steps, edges and transitions with the helpers below (transition rows keep
``most_recent`` and ``sort_key`` consistent and set the step flags the way the state actions do), then asks the SQL
functions in schema ``tasker``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from tasker.store.db import Connection

PROCESSED_STATES = {"complete", "cancelled", "resolved_manually"}


@dataclass
class Builder:
    conn: Connection
    named_task_uuid: uuid.UUID | None = None
    counter: int = 0
    names: dict[uuid.UUID, str] = field(default_factory=dict)

    async def one(self, query: str, params: Any = None) -> dict[str, Any]:
        row = await (await self.conn.execute(query, params)).fetchone()
        assert row is not None
        return row

    async def all(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        return await (await self.conn.execute(query, params)).fetchall()

    async def now(self) -> datetime:
        value: datetime = (await self.one("SELECT timezone('utc', now()) AS now"))["now"]
        return value

    async def _named_task(self) -> uuid.UUID:
        if self.named_task_uuid is None:
            ns = await self.one("INSERT INTO tasker.task_namespaces (name) VALUES ('readiness') RETURNING *")
            nt = await self.one(
                "INSERT INTO tasker.named_tasks (task_namespace_uuid, name) VALUES (%s, 'diamond') RETURNING *",
                [ns["task_namespace_uuid"]],
            )
            self.named_task_uuid = nt["named_task_uuid"]
        return self.named_task_uuid

    async def task(
        self, state: str | None = "pending", *, priority: int = 0, state_age: timedelta | None = None
    ) -> uuid.UUID:
        named_task_uuid = await self._named_task()
        row = await self.one(
            "INSERT INTO tasker.tasks (named_task_uuid, identity_hash, correlation_id, priority)"
            " VALUES (%s, %s, %s, %s) RETURNING task_uuid",
            [named_task_uuid, uuid.uuid4().hex, uuid.uuid4(), priority],
        )
        task_uuid: uuid.UUID = row["task_uuid"]
        if state is not None:
            await self.task_transition(task_uuid, state, age=state_age)
        return task_uuid

    async def task_transition(self, task_uuid: uuid.UUID, to_state: str, *, age: timedelta | None = None) -> None:
        await self.conn.execute(
            """
            WITH prev AS (
                UPDATE tasker.task_transitions SET most_recent = false
                WHERE task_uuid = %(t)s AND most_recent RETURNING to_state
            )
            INSERT INTO tasker.task_transitions (task_uuid, to_state, from_state, sort_key, most_recent, created_at)
            SELECT %(t)s, %(s)s, (SELECT to_state FROM prev),
                   coalesce((SELECT max(sort_key) FROM tasker.task_transitions WHERE task_uuid = %(t)s), 0) + 1,
                   true, timezone('utc', now()) - %(age)s::interval
            """,
            {"t": task_uuid, "s": to_state, "age": age or timedelta(0)},
        )

    async def step(
        self,
        task_uuid: uuid.UUID,
        name: str,
        *states: str,
        attempts: int | None = None,
        max_attempts: int | None = 3,
        retryable: bool = True,
        backoff_request_seconds: int | None = None,
        last_attempted_ago: timedelta | None = None,
    ) -> uuid.UUID:
        """A step with the given transition history (none: no transition row, i.e. pending)."""
        self.counter += 1
        named = await self.one(
            "INSERT INTO tasker.named_steps (name) VALUES (%s) RETURNING named_step_uuid", [f"{name}_{self.counter}"]
        )
        row = await self.one(
            """
            INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid, attempts, max_attempts, retryable,
                                               backoff_request_seconds, last_attempted_at)
            VALUES (%s, %s, %s, %s, %s, %s, timezone('utc', now()) - %s::interval)
            RETURNING workflow_step_uuid
            """,
            [
                task_uuid,
                named["named_step_uuid"],
                attempts,
                max_attempts,
                retryable,
                backoff_request_seconds,
                last_attempted_ago,
            ],
        )
        step_uuid: uuid.UUID = row["workflow_step_uuid"]
        self.names[step_uuid] = name
        for state in states:
            await self.transition(step_uuid, state)
        return step_uuid

    async def transition(
        self,
        step_uuid: uuid.UUID,
        to_state: str,
        *,
        metadata: dict[str, Any] | None = None,
        age: timedelta | None = None,
    ) -> None:
        await self.conn.execute(
            """
            WITH prev AS (
                UPDATE tasker.workflow_step_transitions SET most_recent = false
                WHERE workflow_step_uuid = %(s)s AND most_recent RETURNING to_state
            )
            INSERT INTO tasker.workflow_step_transitions
                (workflow_step_uuid, to_state, from_state, metadata, sort_key, most_recent, created_at)
            SELECT %(s)s, %(to)s, (SELECT to_state FROM prev), %(md)s::jsonb,
                   coalesce((SELECT max(sort_key) FROM tasker.workflow_step_transitions
                             WHERE workflow_step_uuid = %(s)s), 0) + 1,
                   true, timezone('utc', now()) - %(age)s::interval
            """,
            {"s": step_uuid, "to": to_state, "md": json.dumps(metadata or {}), "age": age or timedelta(0)},
        )
        await self.conn.execute(
            "UPDATE tasker.workflow_steps SET processed = %s, in_process = %s WHERE workflow_step_uuid = %s",
            [to_state in PROCESSED_STATES, to_state == "in_progress", step_uuid],
        )

    async def edge(self, parent: uuid.UUID, child: uuid.UUID, name: str = "provides") -> None:
        await self.conn.execute(
            "INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name) VALUES (%s, %s, %s)",
            [parent, child, name],
        )

    async def diamond(self, task_uuid: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
        a = await self.step(task_uuid, "a")
        b = await self.step(task_uuid, "b")
        c = await self.step(task_uuid, "c")
        d = await self.step(task_uuid, "d")
        await self.edge(a, b)
        await self.edge(a, c)
        await self.edge(b, d)
        await self.edge(c, d)
        return a, b, c, d

    async def readiness(self, task_uuid: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
        rows = await self.all("SELECT * FROM tasker.get_step_readiness_status(%s)", [task_uuid])
        return {row["workflow_step_uuid"]: row for row in rows}

    async def ready(self, step_uuid: uuid.UUID) -> bool:
        row = await self.one(
            "SELECT * FROM tasker.get_step_readiness_status_batch("
            " ARRAY[(SELECT task_uuid FROM tasker.workflow_steps WHERE workflow_step_uuid = %(s)s)], ARRAY[%(s)s])",
            {"s": step_uuid},
        )
        result: bool = row["ready_for_execution"]
        return result

    async def context(self, task_uuid: uuid.UUID) -> dict[str, Any]:
        return await self.one("SELECT * FROM tasker.get_task_execution_context(%s)", [task_uuid])


@pytest.fixture
def db(conn: Connection) -> Builder:
    return Builder(conn)


# ---------------------------------------------------------------------------------------------------------------
# Step readiness
# ---------------------------------------------------------------------------------------------------------------


async def test_step_without_transition_has_defaults_and_is_ready(db: Builder) -> None:
    task = await db.task()
    step = await db.step(task, "solo", max_attempts=None)
    row = (await db.readiness(task))[step]
    assert row["current_state"] == "pending"
    assert row["name"] == "solo_1"
    assert row["attempts"] == 0
    assert row["max_attempts"] == 3
    assert row["retryable"] is True
    assert row["total_parents"] == 0 and row["completed_parents"] == 0
    assert row["dependencies_satisfied"] and row["retry_eligible"] and row["ready_for_execution"]
    assert row["next_retry_at"] is None and row["last_failure_at"] is None


PAST_RETRY = {"retry_at": "2000-01-01T00:00:00+00:00"}


@pytest.mark.parametrize(
    ("max_attempts", "attempts", "retryable", "expected"),
    [
        (0, 0, True, True),  # the first attempt always runs, even with max_attempts 0
        (0, 1, True, False),
        (1, 0, True, True),
        (1, 1, True, False),
        (3, 0, True, True),
        (3, 1, True, True),
        (3, 2, True, True),
        (3, 3, True, False),
        (3, 4, True, False),
        (1, 0, False, True),  # non-retryable: first attempt runs ...
        (3, 0, False, True),
        (3, 1, False, False),  # ... retries do not
        (1, 1, False, False),
    ],
)
async def test_retry_eligibility_boundaries(
    db: Builder, max_attempts: int, attempts: int, retryable: bool, expected: bool
) -> None:
    task = await db.task()
    step = await db.step(task, "s", attempts=attempts, max_attempts=max_attempts, retryable=retryable)
    if attempts:  # a failed attempt whose backoff has passed: only eligibility decides
        for state in ("enqueued", "in_progress", "enqueued_as_error_for_orchestration"):
            await db.transition(step, state, age=timedelta(hours=2))
        await db.transition(step, "waiting_for_retry", metadata=PAST_RETRY, age=timedelta(hours=1))
    row = (await db.readiness(task))[step]
    assert row["retry_eligible"] is expected
    assert row["ready_for_execution"] is expected


async def test_retry_at_metadata_sets_a_precise_backoff(db: Builder) -> None:
    task = await db.task()
    now = await db.now()
    future = await db.step(task, "future", attempts=1)
    past = await db.step(task, "past", attempts=1)
    at = now + timedelta(seconds=30, microseconds=250_000)
    await db.transition(future, "waiting_for_retry", metadata={"retry_at": at.isoformat() + "+00:00"})
    await db.transition(past, "waiting_for_retry", metadata={"retry_at": (now - timedelta(milliseconds=1)).isoformat()})
    rows = await db.readiness(task)
    assert rows[future]["next_retry_at"] == at  # sub-second precision kept
    assert rows[future]["ready_for_execution"] is False
    assert rows[past]["ready_for_execution"] is True
    # an offset is honoured: 12:00+02:00 is 10:00 UTC
    other = await db.step(task, "offset", attempts=1)
    await db.transition(other, "waiting_for_retry", metadata={"retry_at": "2030-06-01T12:00:00+02:00"})
    assert (await db.readiness(task))[other]["next_retry_at"] == datetime(2030, 6, 1, 10, 0, 0)


async def test_retry_at_wins_over_backoff_request_seconds(db: Builder) -> None:
    task = await db.task()
    now = await db.now()
    step = await db.step(task, "s", attempts=1, backoff_request_seconds=3600, last_attempted_ago=timedelta(0))
    await db.transition(step, "waiting_for_retry", metadata={"retry_at": (now - timedelta(seconds=1)).isoformat()})
    assert await db.ready(step)


async def test_backoff_request_seconds_not_elapsed_then_elapsed(db: Builder) -> None:
    task = await db.task()
    waiting = await db.step(
        task,
        "waiting",
        "waiting_for_retry",
        attempts=1,
        backoff_request_seconds=60,
        last_attempted_ago=timedelta(seconds=5),
    )
    elapsed = await db.step(
        task,
        "elapsed",
        "waiting_for_retry",
        attempts=1,
        backoff_request_seconds=2,
        last_attempted_ago=timedelta(seconds=5),
    )
    rows = await db.readiness(task)
    assert rows[waiting]["ready_for_execution"] is False
    assert rows[waiting]["next_retry_at"] == rows[waiting]["last_attempted_at"] + timedelta(seconds=60)
    assert rows[elapsed]["ready_for_execution"] is True
    assert rows[elapsed]["next_retry_at"] == rows[elapsed]["last_attempted_at"] + timedelta(seconds=2)


async def test_failure_fallback_backoff_is_exponential_and_capped(db: Builder) -> None:
    task = await db.task()
    recent = await db.step(task, "recent", attempts=3, max_attempts=5)
    await db.transition(recent, "waiting_for_retry", age=timedelta(seconds=5))  # 5 s ago + 2^3 s: still waiting
    old = await db.step(task, "old", attempts=3, max_attempts=5)
    await db.transition(old, "waiting_for_retry", age=timedelta(seconds=9))  # 9 s ago + 8 s: ready
    capped = await db.step(task, "capped", attempts=10, max_attempts=20)
    await db.transition(capped, "waiting_for_retry", age=timedelta(seconds=61))  # min(2^10, 60) = 60 s
    rows = await db.readiness(task)
    assert rows[recent]["ready_for_execution"] is False
    assert rows[recent]["next_retry_at"] == rows[recent]["last_failure_at"] + timedelta(seconds=8)
    assert rows[old]["ready_for_execution"] is True
    assert rows[capped]["next_retry_at"] == rows[capped]["last_failure_at"] + timedelta(seconds=60)
    assert rows[capped]["ready_for_execution"] is True


async def test_parent_states_decide_dependencies(db: Builder) -> None:
    task = await db.task()
    resolved = await db.step(task, "resolved", "resolved_manually")
    complete = await db.step(task, "complete", "complete")
    failed = await db.step(task, "failed", "error")
    untouched = await db.step(task, "untouched")
    ok_child = await db.step(task, "ok_child")
    await db.edge(resolved, ok_child)
    await db.edge(complete, ok_child)
    await db.edge(complete, ok_child, name="second edge, same parent")
    blocked_child = await db.step(task, "blocked_child")
    await db.edge(resolved, blocked_child)
    await db.edge(failed, blocked_child)
    waiting_child = await db.step(task, "waiting_child")
    await db.edge(untouched, waiting_child)
    rows = await db.readiness(task)
    assert (rows[ok_child]["total_parents"], rows[ok_child]["completed_parents"]) == (2, 2)
    assert rows[ok_child]["dependencies_satisfied"] and rows[ok_child]["ready_for_execution"]
    assert (rows[blocked_child]["total_parents"], rows[blocked_child]["completed_parents"]) == (2, 1)
    assert not rows[blocked_child]["dependencies_satisfied"]
    assert not rows[blocked_child]["ready_for_execution"]
    assert not rows[waiting_child]["ready_for_execution"]
    # the parents themselves: complete/resolved/error are not ready, the untouched root is
    assert [rows[s]["ready_for_execution"] for s in (resolved, complete, failed, untouched)] == [
        False,
        False,
        False,
        True,
    ]


async def test_in_process_and_processed_steps_are_not_ready(db: Builder) -> None:
    task = await db.task()
    running = await db.step(task, "running", "enqueued", "in_progress", attempts=1)
    done = await db.step(task, "done", "complete")
    flagged = await db.step(task, "flagged")
    await db.conn.execute("UPDATE tasker.workflow_steps SET in_process = true WHERE workflow_step_uuid = %s", [flagged])
    processed_pending = await db.step(task, "processed_pending")
    await db.conn.execute(
        "UPDATE tasker.workflow_steps SET processed = true WHERE workflow_step_uuid = %s", [processed_pending]
    )
    rows = await db.readiness(task)
    assert rows[running]["current_state"] == "in_progress"
    assert not any(rows[s]["ready_for_execution"] for s in (running, done, flagged, processed_pending))


async def test_batch_covers_several_tasks_and_filters_steps(db: Builder) -> None:
    t1, t2, t3 = await db.task(), await db.task(), await db.task()
    a1, _, _, _ = await db.diamond(t1)
    a2, b2, _, _ = await db.diamond(t2)
    await db.diamond(t3)
    rows = await db.all("SELECT * FROM tasker.get_step_readiness_status_batch(%s)", [[t1, t2]])
    assert len(rows) == 8
    assert {r["task_uuid"] for r in rows} == {t1, t2}
    assert [(r["task_uuid"], r["workflow_step_uuid"]) for r in rows] == sorted(
        (r["task_uuid"], r["workflow_step_uuid"]) for r in rows
    )
    assert {r["workflow_step_uuid"] for r in rows if r["ready_for_execution"]} == {a1, a2}
    only = await db.all("SELECT * FROM tasker.get_step_readiness_status(%s, %s)", [t2, [a2, b2]])
    assert [r["workflow_step_uuid"] for r in only] == sorted([a2, b2])


# ---------------------------------------------------------------------------------------------------------------
# Task execution context
# ---------------------------------------------------------------------------------------------------------------


async def test_context_has_ready_steps(db: Builder) -> None:
    task = await db.task()
    await db.diamond(task)
    ctx = await db.context(task)
    assert ctx["status"] == "pending"
    assert (ctx["total_steps"], ctx["pending_steps"], ctx["ready_steps"]) == (4, 4, 1)
    assert ctx["execution_status"] == "has_ready_steps"
    assert ctx["recommended_action"] == "execute_ready_steps"
    assert ctx["health_status"] == "healthy"
    assert ctx["completion_percentage"] == 0


async def test_context_processing(db: Builder) -> None:
    task = await db.task("steps_in_process")
    a, b, c, _ = await db.diamond(task)
    await db.transition(a, "complete")
    await db.transition(b, "enqueued")
    await db.transition(b, "in_progress")
    await db.transition(c, "enqueued")
    ctx = await db.context(task)
    assert ctx["status"] == "steps_in_process"
    assert (ctx["completed_steps"], ctx["in_progress_steps"], ctx["enqueued_steps"], ctx["pending_steps"]) == (
        1,
        1,
        1,
        1,
    )
    assert ctx["ready_steps"] == 0
    assert ctx["execution_status"] == "processing"
    assert ctx["recommended_action"] == "wait_for_completion"
    assert ctx["completion_percentage"] == 25


async def test_context_all_complete_counts_resolved_manually(db: Builder) -> None:
    task = await db.task("evaluating_results")
    a, b, c, d = await db.diamond(task)
    for step in (a, b, d):
        await db.transition(step, "complete")
    await db.transition(c, "resolved_manually")
    ctx = await db.context(task)
    assert ctx["completed_steps"] == 4
    assert ctx["execution_status"] == "all_complete"
    assert ctx["recommended_action"] == "finalize_task"
    assert ctx["completion_percentage"] == 100


async def test_context_cancelled_step_is_not_complete(db: Builder) -> None:
    task = await db.task()
    a, b, c, d = await db.diamond(task)
    for step in (a, b, c):
        await db.transition(step, "complete")
    await db.transition(d, "cancelled")
    ctx = await db.context(task)
    assert (ctx["completed_steps"], ctx["cancelled_steps"]) == (3, 1)
    assert ctx["execution_status"] != "all_complete"
    assert ctx["completion_percentage"] == 75


async def test_context_blocked_by_failures(db: Builder) -> None:
    task = await db.task("blocked_by_failures")
    a, b, _, _ = await db.diamond(task)
    await db.transition(a, "complete")
    await db.transition(b, "error")
    ctx = await db.context(task)
    assert ctx["failed_steps"] == 1
    assert ctx["ready_steps"] == 1  # c is still ready, but the failure wins
    assert ctx["execution_status"] == "blocked_by_failures"
    assert ctx["recommended_action"] == "handle_failures"
    assert ctx["health_status"] == "blocked"


async def test_context_waiting_for_dependencies(db: Builder) -> None:
    task = await db.task("waiting_for_dependencies")
    a, _, _, _ = await db.diamond(task)
    await db.transition(a, "cancelled")  # children can never become ready; nothing runs, nothing waits for retry
    ctx = await db.context(task)
    assert ctx["execution_status"] == "waiting_for_dependencies"
    assert ctx["recommended_action"] == "wait_for_dependencies"
    empty = await db.task()
    ctx = await db.context(empty)
    assert (ctx["total_steps"], ctx["execution_status"], ctx["completion_percentage"]) == (
        0,
        "waiting_for_dependencies",
        0,
    )


async def test_context_waiting_for_retry_then_ready(db: Builder) -> None:
    task = await db.task("waiting_for_dependencies")
    a, _, _, _ = await db.diamond(task)
    now = await db.now()
    await db.transition(a, "waiting_for_retry", metadata={"retry_at": (now + timedelta(minutes=5)).isoformat()})
    await db.conn.execute("UPDATE tasker.workflow_steps SET attempts = 1 WHERE workflow_step_uuid = %s", [a])
    ctx = await db.context(task)
    assert (ctx["waiting_for_retry_steps"], ctx["ready_steps"]) == (1, 0)
    assert ctx["execution_status"] == "waiting_for_retry"
    assert ctx["recommended_action"] == "wait_for_retry"
    assert ctx["health_status"] == "recovering"
    # the retry time comes: the step is ready, no longer counted as waiting
    await db.transition(a, "waiting_for_retry", metadata={"retry_at": (now - timedelta(seconds=1)).isoformat()})
    ctx = await db.context(task)
    assert (ctx["waiting_for_retry_steps"], ctx["ready_steps"]) == (0, 1)
    assert ctx["execution_status"] == "has_ready_steps"


async def test_contexts_batch_one_row_per_task(db: Builder) -> None:
    t1, t2 = await db.task(), await db.task("blocked_by_failures")
    await db.diamond(t1)
    a2, _, _, _ = await db.diamond(t2)
    await db.transition(a2, "error")
    rows = await db.all("SELECT * FROM tasker.get_task_execution_contexts_batch(%s)", [[t1, t2, uuid.uuid4()]])
    by_task = {r["task_uuid"]: r["execution_status"] for r in rows}
    assert by_task == {t1: "has_ready_steps", t2: "blocked_by_failures"}


# ---------------------------------------------------------------------------------------------------------------
# DAG helpers and view
# ---------------------------------------------------------------------------------------------------------------


async def test_transitive_dependencies_deduplicated_with_min_distance(db: Builder) -> None:
    task = await db.task()
    a, b, c, d = await db.diamond(task)
    await db.conn.execute("UPDATE tasker.workflow_steps SET results = '{\"x\": 1}' WHERE workflow_step_uuid = %s", [a])
    rows = await db.all("SELECT * FROM tasker.get_step_transitive_dependencies(%s)", [d])
    assert [(r["workflow_step_uuid"], r["distance"]) for r in rows] == [*sorted([(b, 1), (c, 1)]), (a, 2)]
    assert rows[-1]["step_name"] == "a_1" and rows[-1]["results"] == {"x": 1}
    assert all(r["task_uuid"] == task for r in rows)
    # a direct edge makes a the nearest ancestor too: still once, at distance 1
    await db.edge(a, d)
    rows = await db.all("SELECT * FROM tasker.get_step_transitive_dependencies(%s)", [d])
    assert len(rows) == 3
    assert {r["workflow_step_uuid"]: r["distance"] for r in rows} == {a: 1, b: 1, c: 1}
    assert await db.all("SELECT * FROM tasker.get_step_transitive_dependencies(%s)", [a]) == []


async def test_dependency_levels_on_a_diamond(db: Builder) -> None:
    task = await db.task()
    a, b, c, d = await db.diamond(task)
    rows = await db.all("SELECT * FROM tasker.calculate_dependency_levels(%s)", [task])
    assert {r["workflow_step_uuid"]: r["dependency_level"] for r in rows} == {a: 0, b: 1, c: 1, d: 2}
    assert [r["dependency_level"] for r in rows] == [0, 1, 1, 2]
    # longest path wins: a -> d directly does not lower d's level
    await db.edge(a, d)
    rows = await db.all("SELECT * FROM tasker.calculate_dependency_levels(%s)", [task])
    assert {r["workflow_step_uuid"]: r["dependency_level"] for r in rows}[d] == 2


async def test_step_dag_relationships_view(db: Builder) -> None:
    task = await db.task()
    a, b, c, d = await db.diamond(task)
    rows = await db.all("SELECT * FROM tasker.step_dag_relationships WHERE task_uuid = %s", [task])
    view = {r["workflow_step_uuid"]: r for r in rows}
    assert view[a]["is_root_step"] and not view[a]["is_leaf_step"]
    assert view[a]["child_step_uuids"] == [str(u) for u in sorted([b, c])]
    assert view[a]["parent_step_uuids"] == []
    assert view[d]["parent_step_uuids"] == [str(u) for u in sorted([b, c])]
    assert (view[d]["parent_count"], view[d]["child_count"]) == (2, 0)
    assert view[d]["is_leaf_step"] and not view[d]["is_root_step"]
    assert {s: view[s]["min_depth_from_root"] for s in (a, b, c, d)} == {a: 0, b: 1, c: 1, d: 2}


# ---------------------------------------------------------------------------------------------------------------
# Next ready tasks
# ---------------------------------------------------------------------------------------------------------------


async def next_ready(db: Builder, limit: int = 5) -> list[dict[str, Any]]:
    return await db.all("SELECT * FROM tasker.get_next_ready_tasks(%s)", [limit])


async def test_next_ready_finds_tasks_that_waited_for_hours(db: Builder) -> None:
    deps = await db.task("waiting_for_dependencies", state_age=timedelta(hours=3))
    a, _, _, _ = await db.diamond(deps)
    retry = await db.task("waiting_for_retry", state_age=timedelta(hours=2, minutes=5))
    r = await db.step(retry, "r", attempts=1)
    await db.transition(r, "waiting_for_retry", metadata=PAST_RETRY, age=timedelta(hours=2))
    rows = await next_ready(db)
    found = {row["task_uuid"]: row for row in rows}
    assert set(found) == {deps, retry}
    assert found[deps]["ready_steps_count"] == 1
    assert found[deps]["current_state"] == "waiting_for_dependencies"
    assert found[deps]["task_name"] == "diamond" and found[deps]["namespace_name"] == "readiness"
    # the age bonus: about one point per minute waited
    assert 179 < found[deps]["computed_priority"] < 182
    assert a is not None


async def test_next_ready_ignores_tasks_with_nothing_ready(db: Builder) -> None:
    running = await db.task("steps_in_process")
    a, _, _, _ = await db.diamond(running)
    await db.transition(a, "enqueued")
    await db.transition(a, "in_progress")
    backoff = await db.task("waiting_for_dependencies", state_age=timedelta(hours=5))
    s = await db.step(
        backoff,
        "s",
        "waiting_for_retry",
        attempts=1,
        backoff_request_seconds=600,
        last_attempted_ago=timedelta(seconds=1),
    )
    blocked = await db.task("blocked_by_failures")
    await db.step(blocked, "root")  # ready, but the task is blocked: not a candidate
    done = await db.task("complete")
    await db.step(done, "root", "complete")
    assert await next_ready(db) == []
    # the backoff passes while the task waits: it is found
    await db.conn.execute(
        "UPDATE tasker.workflow_steps SET backoff_request_seconds = 1 WHERE workflow_step_uuid = %s", [s]
    )
    assert [row["task_uuid"] for row in await next_ready(db)] == [backoff]


async def test_next_ready_finds_ready_steps_of_a_task_in_steps_in_process(db: Builder) -> None:
    task = await db.task("steps_in_process")
    a, b, c, _ = await db.diamond(task)
    await db.transition(a, "complete")
    await db.transition(b, "enqueued")
    rows = await next_ready(db)
    assert [(r["task_uuid"], r["ready_steps_count"], r["current_state"]) for r in rows] == [
        (task, 1, "steps_in_process")
    ]
    assert c is not None


async def test_next_ready_respects_priority_and_limit(db: Builder) -> None:
    tasks = {}
    for priority in (1, 10, 5, -3):
        task = await db.task("waiting_for_dependencies", priority=priority)
        await db.step(task, "root")
        tasks[task] = priority
    rows = await next_ready(db, limit=3)
    assert [r["priority"] for r in rows] == [10, 5, 1]
    assert rows[0]["computed_priority"] >= 10


async def test_next_ready_age_bonus_prevents_starvation(db: Builder) -> None:
    fresh = await db.task("waiting_for_dependencies", priority=100)
    await db.step(fresh, "root")
    old = await db.task("waiting_for_dependencies", priority=-50, state_age=timedelta(hours=4))
    await db.step(old, "root")
    assert [r["task_uuid"] for r in await next_ready(db)] == [old, fresh]


async def test_next_ready_pending_task_qualifies_without_ready_steps(db: Builder) -> None:
    pending = await db.task("pending")
    rows = await next_ready(db)
    assert [(r["task_uuid"], r["ready_steps_count"]) for r in rows] == [(pending, 0)]
