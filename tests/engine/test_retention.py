"""Retention on a real database: finished tasks from real workflow runs pruned in batches, everything else kept.

Tasks are run end to end (orchestrator and worker in this event loop) so they carry every kind of row (steps,
edges, transitions, result audit); their final transition is then backdated past the cutoff.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from tasker.engine.operator import cancel_task
from tasker.engine.retention import prune
from tasker.engine.schedules import add_schedule
from tasker.model.machines import TaskEvent
from tasker.model.schedules import ScheduleSpec
from tasker.model.states import TaskState
from tasker.store.db import Connection, connect
from tasker.store.dlq import dlq_create_entry
from tasker.store.transitions import TaskChange, task_transition
from tests.e2e.runtime import create, register_fixture_templates, running, wait_settled
from tests.store.test_dlq import task_in

CUTOFF = datetime.now(UTC) - timedelta(days=30)

# every table holding rows of a task, and how a row names its task
PER_TASK = {
    "tasker.tasks": "SELECT task_uuid FROM tasker.tasks",
    "tasker.workflow_steps": "SELECT task_uuid FROM tasker.workflow_steps",
    "tasker.workflow_step_edges": "SELECT s.task_uuid FROM tasker.workflow_step_edges e"
    " JOIN tasker.workflow_steps s ON s.workflow_step_uuid = e.from_step_uuid",
    "tasker.task_transitions": "SELECT task_uuid FROM tasker.task_transitions",
    "tasker.workflow_step_transitions": "SELECT s.task_uuid FROM tasker.workflow_step_transitions x"
    " JOIN tasker.workflow_steps s USING (workflow_step_uuid)",
    "tasker.workflow_step_result_audit": "SELECT task_uuid FROM tasker.workflow_step_result_audit",
    "tasker.tasks_dlq": "SELECT task_uuid FROM tasker.tasks_dlq",
    "tasker_ext.domain_events": "SELECT task_uuid FROM tasker_ext.domain_events",
}


async def rows(conn: Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    return await (await conn.execute(query, params)).fetchall()


async def rows_of(conn: Connection, tasks: list[UUID]) -> dict[str, int]:
    """Rows per table belonging to these tasks."""
    found = {}
    for table, query in PER_TASK.items():
        counted = await rows(conn, f"SELECT count(*) AS n FROM ({query}) q WHERE q.task_uuid = ANY(%s)", [tasks])
        found[table] = int(counted[0]["n"])
    return found


async def backdate(conn: Connection, task_uuid: UUID, days: int = 40) -> None:
    await conn.execute(
        "UPDATE tasker.task_transitions SET created_at = created_at - make_interval(days => %s) WHERE task_uuid = %s",
        [days, task_uuid],
    )


@pytest.fixture
async def world(conn: Connection, db_url: str) -> dict[str, Any]:
    """Old finished tasks (two complete, one cancelled) and tasks that must stay: recent complete, old in
    progress, old error, old complete with a pending DLQ entry."""
    await register_fixture_templates(conn)
    async with running(db_url, ["linear_workflow"]):
        done = [
            await create(conn, "linear_workflow", "mathematical_sequence", {"even_number": n}) for n in (2, 4, 6, 8)
        ]
        for task in done:
            assert (await wait_settled(conn, task.task_uuid))["state"] == "complete"
    cancelled = await create(conn, "linear_workflow", "mathematical_sequence", {"even_number": 10})
    await cancel_task(conn, task_uuid=cancelled.task_uuid, actor="test")
    in_progress = await create(conn, "linear_workflow", "mathematical_sequence", {"even_number": 12})
    errored, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
    await task_transition(conn, TaskChange(errored, TaskState.STEPS_IN_PROCESS, [TaskEvent.STALE]))
    old = [done[0].task_uuid, done[1].task_uuid, cancelled.task_uuid]
    in_dlq = done[3].task_uuid
    await dlq_create_entry(conn, in_dlq, reason="manual_dlq", original_state="complete")
    for task_uuid in [*old, in_progress.task_uuid, errored, in_dlq]:
        await backdate(conn, task_uuid)
        await conn.execute(  # a durable domain event of the task's (pruned with it, or kept with it)
            "INSERT INTO tasker_ext.domain_events (name, namespace, task_uuid, step_uuid, step_name, condition,"
            " outcome, delivery_mode, payload) VALUES ('order.done', 'linear_workflow', %s, gen_random_uuid(),"
            " 'linear_step_1', 'success', 'success', 'durable', '{}'::jsonb)",
            [task_uuid],
        )
    kept = [done[2].task_uuid, in_progress.task_uuid, errored, in_dlq]
    return {"old": old, "kept": kept, "kept_rows": await rows_of(conn, kept), "old_rows": await rows_of(conn, old)}


async def test_prune_archives_old_finished_tasks_in_batches_and_keeps_the_rest(
    conn: Connection, world: dict[str, Any]
) -> None:
    assert world["old_rows"]["tasker.workflow_step_result_audit"] >= 8  # real runs: audit rows to remove
    assert world["old_rows"]["tasker_ext.domain_events"] == 3
    report = await prune(conn, cutoff=CUTOFF, archive=True, batch_size=2)
    assert report.tasks == 3 and report.archived == 3 and report.batches == 2
    assert report.rows == {table.split(".")[1]: n for table, n in world["old_rows"].items()}
    assert await rows_of(conn, world["old"]) == dict.fromkeys(PER_TASK, 0)
    assert await rows_of(conn, world["kept"]) == world["kept_rows"]
    archived = {r["task_uuid"]: r for r in await rows(conn, "SELECT * FROM tasker_ext.task_archive")}
    assert set(archived) == set(world["old"])
    complete = archived[world["old"][0]]
    assert (complete["namespace"], complete["name"], complete["final_state"]) == (
        "linear_workflow",
        "mathematical_sequence",
        "complete",
    )
    document = complete["document"]
    assert document["task"]["task_uuid"] == str(world["old"][0])
    assert sorted(s["name"] for s in document["steps"]) == [f"linear_step_{i}" for i in (1, 2, 3, 4)]
    assert [e["name"] for e in document["domain_events"]] == ["order.done"]
    assert all(s["transitions"] and s["result_audit"] and s["results"] for s in document["steps"])
    assert len(document["edges"]) == 3 and document["transitions"][-1]["to_state"] == "complete"
    assert archived[world["old"][2]]["final_state"] == "cancelled"
    again = await prune(conn, cutoff=CUTOFF, archive=True, batch_size=2)
    assert again.tasks == 0 and again.batches == 1


async def test_dry_run_counts_and_writes_nothing(conn: Connection, world: dict[str, Any]) -> None:
    report = await prune(conn, cutoff=CUTOFF, archive=True, batch_size=2, dry_run=True)
    assert report.rows == {table.split(".")[1]: n for table, n in world["old_rows"].items()}
    assert report.archived == 3 and report.batches == 0
    assert await rows_of(conn, world["old"]) == world["old_rows"]
    assert (await rows(conn, "SELECT count(*) AS n FROM tasker_ext.task_archive"))[0]["n"] == 0


async def test_delete_mode_archives_nothing(conn: Connection, world: dict[str, Any]) -> None:
    report = await prune(conn, cutoff=CUTOFF, archive=False, batch_size=500)
    assert report.tasks == 3 and report.archived == 0 and report.batches == 1
    assert await rows_of(conn, world["old"]) == dict.fromkeys(PER_TASK, 0)
    assert (await rows(conn, "SELECT count(*) AS n FROM tasker_ext.task_archive"))[0]["n"] == 0


async def test_a_task_locked_by_an_operator_is_skipped_not_waited_for(
    conn: Connection, db_url: str, world: dict[str, Any]
) -> None:
    operator = await connect(db_url)
    try:
        async with operator.transaction():  # as an operator action holds it (engine task_lock)
            await operator.execute(
                "SELECT 1 FROM tasker.tasks WHERE task_uuid = %s FOR NO KEY UPDATE", [world["old"][0]]
            )
            report = await prune(conn, cutoff=CUTOFF, archive=True, batch_size=500)
            assert report.tasks == 2
    finally:
        await operator.close()
    assert (await rows_of(conn, [world["old"][0]]))["tasker.tasks"] == 1
    assert (await prune(conn, cutoff=CUTOFF, archive=True)).tasks == 1


async def test_old_queue_archives_and_schedule_runs_are_pruned(conn: Connection) -> None:
    await register_fixture_templates(conn)
    await conn.execute("SELECT pgmq.create('retention_probe')")
    for _ in range(3):
        await conn.execute("SELECT pgmq.send('retention_probe', '{}'::jsonb)")
    await conn.execute("SELECT pgmq.archive('retention_probe', ARRAY[1, 2, 3]::bigint[])")
    await conn.execute("UPDATE pgmq.a_retention_probe SET archived_at = now() - interval '40 days' WHERE msg_id < 3")
    schedule = ScheduleSpec(name="s", cron="* * * * *", namespace="test_scenarios", task_name="success_only")
    row = await add_schedule(conn, schedule, env="test")
    await conn.execute(
        "INSERT INTO tasker_ext.schedule_runs (schedule_uuid, scheduled_for, created_at)"
        " VALUES (%(s)s, now() - interval '40 days', now() - interval '40 days'), (%(s)s, now(), now())",
        {"s": row["schedule_uuid"]},
    )
    dry = await prune(conn, cutoff=CUTOFF, dry_run=True)
    assert dry.queue_archive["retention_probe"] == 2 and dry.schedule_runs == 1
    report = await prune(conn, cutoff=CUTOFF, batch_size=1)
    assert report.queue_archive["retention_probe"] == 2 and report.schedule_runs == 1
    left = await rows(conn, "SELECT msg_id FROM pgmq.a_retention_probe")
    assert [r["msg_id"] for r in left] == [3]
    assert (await rows(conn, "SELECT count(*) AS n FROM tasker_ext.schedule_runs"))[0]["n"] == 1
