"""The dead-letter queue store and the staleness SQL of migration 0005, on rows built by hand.

Tasks are made with ``tests.factories``, moved through the real state machine, and aged by backdating their current
transition (time in state) or their row (age), so thresholds of minutes are tested without waiting.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import pytest

from tasker.errors import NotFoundError
from tasker.model.machines import StepEvent, TaskEvent
from tasker.model.states import StepState, TaskState
from tasker.store.db import Connection, connect
from tasker.store.dlq import (
    InvalidDlqRequestError,
    StalenessThresholds,
    dlq_create_entry,
    dlq_entries_for_task,
    dlq_find_stale_tasks,
    dlq_get,
    dlq_investigation_queue,
    dlq_list,
    dlq_recheck_stale_task,
    dlq_record_max_retries_exceeded,
    dlq_staleness_monitoring,
    dlq_stats,
    dlq_update,
)
from tasker.store.transitions import StepChange, TaskChange, step_transition, task_transition
from tests.factories import insert_task_with_steps

E = TaskEvent
TO_STATE: dict[TaskState, list[TaskEvent]] = {
    TaskState.STEPS_IN_PROCESS: [E.START, E.READY_STEPS_FOUND, E.STEPS_ENQUEUED],
    TaskState.WAITING_FOR_DEPENDENCIES: [E.START, E.NO_DEPENDENCIES_READY],
    TaskState.WAITING_FOR_RETRY: [E.START, E.READY_STEPS_FOUND, E.STEPS_ENQUEUED, E.STEP_FAILED],
    TaskState.BLOCKED_BY_FAILURES: [
        E.START,
        E.READY_STEPS_FOUND,
        E.STEPS_ENQUEUED,
        E.STEP_COMPLETED,
        E.PERMANENT_FAILURE,
    ],
    TaskState.EVALUATING_RESULTS: [E.START, E.READY_STEPS_FOUND, E.STEPS_ENQUEUED, E.STEP_COMPLETED],
}


async def task_in(
    conn: Connection, state: TaskState, *, in_state_minutes: float = 0, age_minutes: float | None = None
) -> tuple[UUID, dict[str, UUID]]:
    """A two-step task (a → b) moved into ``state``, entered ``in_state_minutes`` ago, created ``age_minutes`` ago."""
    task_uuid, steps = await insert_task_with_steps(conn, ["a", "b"], [("a", "b")])
    if state is not TaskState.PENDING:
        await task_transition(conn, TaskChange(task_uuid, TaskState.PENDING, TO_STATE[state]))
    await age(conn, task_uuid, in_state_minutes=in_state_minutes, age_minutes=age_minutes)
    return task_uuid, steps


async def age(
    conn: Connection, task_uuid: UUID, *, in_state_minutes: float = 0, age_minutes: float | None = None
) -> None:
    await conn.execute(
        "UPDATE tasker.task_transitions SET created_at = created_at - make_interval(secs => %s)"
        " WHERE task_uuid = %s AND most_recent",
        [in_state_minutes * 60, task_uuid],
    )
    # no step moved since then either: staleness counts from the latest task or step transition
    await conn.execute(
        "UPDATE tasker.workflow_step_transitions st SET created_at = st.created_at - make_interval(secs => %s)"
        " FROM tasker.workflow_steps s WHERE s.workflow_step_uuid = st.workflow_step_uuid AND s.task_uuid = %s",
        [in_state_minutes * 60, task_uuid],
    )
    total = max(in_state_minutes, age_minutes or 0)
    await conn.execute(
        "UPDATE tasker.tasks SET created_at = created_at - make_interval(secs => %s) WHERE task_uuid = %s",
        [total * 60 + 1, task_uuid],
    )


async def set_template_config(conn: Connection, task_uuid: UUID, config: dict[str, Any]) -> None:
    await conn.execute(
        "UPDATE tasker.named_tasks SET configuration = %s"
        " WHERE named_task_uuid = (SELECT named_task_uuid FROM tasker.tasks WHERE task_uuid = %s)",
        [json.dumps(config), task_uuid],
    )


async def one(conn: Connection, query: str, params: Any = None) -> dict[str, Any]:
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return row


async def count_entries(conn: Connection) -> int:
    return int((await one(conn, "SELECT count(*) AS n FROM tasker.tasks_dlq"))["n"])


SHORT = StalenessThresholds(
    waiting_for_dependencies_minutes=10, waiting_for_retry_minutes=5, steps_in_process_minutes=5, max_lifetime_hours=24
)


# --- thresholds -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "config", "expected"),
    [
        ("waiting_for_dependencies", {}, 60),
        ("waiting_for_retry", {}, 30),
        ("steps_in_process", {}, 30),
        ("steps_in_process", {"lifecycle": {"max_steps_in_process_minutes": 7}}, 7),
        ("waiting_for_retry", {"lifecycle": {"max_waiting_for_retry_minutes": 3}}, 3),
        ("waiting_for_dependencies", {"lifecycle": {"max_waiting_for_dependencies_minutes": 90}}, 90),
        # the override is per state: another state's value does not apply
        ("steps_in_process", {"lifecycle": {"max_waiting_for_retry_minutes": 3}}, 30),
        # malformed or non-positive values fall back to the default instead of failing the sweep
        ("steps_in_process", {"lifecycle": {"max_steps_in_process_minutes": "soon"}}, 30),
        ("steps_in_process", {"lifecycle": {"max_steps_in_process_minutes": 0}}, 30),
        ("steps_in_process", {"lifecycle": None}, 30),
        ("blocked_by_failures", {"lifecycle": {"max_steps_in_process_minutes": 7}}, 1440),
    ],
)
async def test_calculate_staleness_threshold(conn: Connection, state: str, config: Any, expected: int) -> None:
    row = await one(
        conn,
        "SELECT tasker.calculate_staleness_threshold(%s, %s::jsonb, 60, 30, 30) AS minutes",
        [state, json.dumps(config)],
    )
    assert row["minutes"] == expected


async def test_threshold_defaults_are_the_reference_ones(conn: Connection) -> None:
    row = await one(conn, "SELECT tasker.calculate_staleness_threshold('waiting_for_retry', '{}') AS minutes")
    assert row["minutes"] == 30


# --- finding stale tasks --------------------------------------------------------------------------------------


async def test_find_stale_tasks_by_state_threshold_and_lifetime(conn: Connection) -> None:
    processing, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=6)
    retrying, _ = await task_in(conn, TaskState.WAITING_FOR_RETRY, in_state_minutes=20)
    waiting, _ = await task_in(conn, TaskState.WAITING_FOR_DEPENDENCIES, in_state_minutes=11)
    await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=4)  # under its threshold
    await task_in(conn, TaskState.WAITING_FOR_DEPENDENCIES, in_state_minutes=9)  # under its threshold
    await task_in(conn, TaskState.BLOCKED_BY_FAILURES, in_state_minutes=500)  # never swept
    await task_in(conn, TaskState.EVALUATING_RESULTS, in_state_minutes=500)  # never swept
    old, _ = await task_in(conn, TaskState.WAITING_FOR_DEPENDENCIES, in_state_minutes=1, age_minutes=25 * 60)

    stale = await dlq_find_stale_tasks(conn, SHORT, batch_size=100)

    by_uuid = {s.task_uuid: s for s in stale}
    assert set(by_uuid) == {processing, retrying, waiting, old}
    # longest in their state first
    assert [s.task_uuid for s in stale][:3] == [retrying, waiting, processing]
    assert by_uuid[processing].state is TaskState.STEPS_IN_PROCESS
    assert by_uuid[processing].threshold_minutes == 5
    assert 6 <= by_uuid[processing].time_in_state_minutes < 7
    assert by_uuid[processing].detection_method == "automatic_staleness"
    assert by_uuid[waiting].threshold_minutes == 10
    assert by_uuid[old].detection_method == "max_lifetime_exceeded"
    assert by_uuid[old].max_lifetime_minutes == 24 * 60
    assert by_uuid[old].task_age_minutes >= 25 * 60

    assert len(await dlq_find_stale_tasks(conn, SHORT, batch_size=2)) == 2


async def test_find_stale_tasks_honours_lifecycle_and_skips_pending_entries(conn: Connection) -> None:
    overridden, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=2)
    await set_template_config(conn, overridden, {"lifecycle": {"max_steps_in_process_minutes": 1}})
    relaxed, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=20)
    await set_template_config(conn, relaxed, {"lifecycle": {"max_steps_in_process_minutes": 120}})
    opted_out, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=20)
    await set_template_config(conn, opted_out, {"lifecycle": {"staleness_action": "none"}})
    short_life, _ = await task_in(conn, TaskState.WAITING_FOR_DEPENDENCIES, in_state_minutes=1, age_minutes=31)
    await set_template_config(conn, short_life, {"lifecycle": {"max_duration_minutes": 30}})
    in_dlq, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=20)
    assert await dlq_create_entry(conn, in_dlq, reason="manual_dlq", original_state="steps_in_process")

    stale = {s.task_uuid: s for s in await dlq_find_stale_tasks(conn, SHORT)}

    assert set(stale) == {overridden, short_life}
    assert stale[overridden].threshold_minutes == 1
    assert stale[short_life].max_lifetime_minutes == 30
    assert await dlq_recheck_stale_task(conn, overridden, SHORT) is not None
    assert await dlq_recheck_stale_task(conn, relaxed, SHORT) is None
    assert await dlq_recheck_stale_task(conn, in_dlq, SHORT) is None


# --- entries --------------------------------------------------------------------------------------------------


async def test_create_entry_snapshots_task_and_steps(conn: Connection) -> None:
    task_uuid, steps = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=3)
    failure = {"success": False, "error": {"message": "boom", "error_type": "handler_error", "retryable": True}}
    await step_transition(
        conn,
        StepChange(
            steps["a"],
            StepState.PENDING,
            [StepEvent.ENQUEUE, StepEvent.START, StepEvent.WAIT_FOR_RETRY],
            results=failure,
        ),
    )

    entry_uuid = await dlq_create_entry(
        conn,
        task_uuid,
        reason="staleness_timeout",
        original_state=TaskState.STEPS_IN_PROCESS,
        metadata={"detection_method": "automatic_staleness", "time_in_state_minutes": 3.0, "threshold_minutes": 2},
    )

    assert entry_uuid is not None
    entry = await dlq_get(conn, entry_uuid)
    assert entry["task_uuid"] == task_uuid
    assert entry["dlq_reason"] == "staleness_timeout"
    assert entry["resolution_status"] == "pending"
    assert entry["original_state"] == "steps_in_process"
    assert entry["metadata"] == {
        "detection_method": "automatic_staleness",
        "time_in_state_minutes": 3.0,
        "threshold_minutes": 2,
    }
    snapshot = entry["task_snapshot"]
    assert snapshot["task"]["task_uuid"] == str(task_uuid)
    assert snapshot["current_state"] == "steps_in_process"
    assert snapshot["namespace_name"].startswith("ns_")
    assert snapshot["task_name"] == "factory"
    step_rows = {s["workflow_step_uuid"]: s for s in snapshot["steps"]}
    assert set(step_rows) == {str(steps["a"]), str(steps["b"])}
    a = step_rows[str(steps["a"])]
    assert a["current_state"] == "waiting_for_retry"
    assert a["attempts"] == 1
    assert a["max_attempts"] == 3
    assert a["error"] == failure["error"]
    assert step_rows[str(steps["b"])]["current_state"] == "pending"
    assert step_rows[str(steps["b"])]["error"] is None


async def test_one_pending_entry_per_task_history_allowed(conn: Connection) -> None:
    task_uuid, _ = await task_in(conn, TaskState.BLOCKED_BY_FAILURES)
    first = await dlq_record_max_retries_exceeded(conn, task_uuid, exhausted_step_uuids=[uuid4()])
    assert first is not None
    assert await dlq_create_entry(conn, task_uuid, reason="staleness_timeout", original_state="x") is None
    assert await count_entries(conn) == 1

    await dlq_update(conn, first, resolution_status="manually_resolved", resolved_by="ops")
    second = await dlq_create_entry(conn, task_uuid, reason="manual_dlq", original_state="blocked_by_failures")
    assert second is not None
    assert [e["dlq_entry_uuid"] for e in await dlq_entries_for_task(conn, task_uuid)] == [second, first]
    # the resolved one cannot be reopened while another is pending
    with pytest.raises(InvalidDlqRequestError, match="already has a pending entry"):
        await dlq_update(conn, first, resolution_status="pending")


async def test_max_retries_exceeded_entry(conn: Connection) -> None:
    task_uuid, steps = await task_in(conn, TaskState.BLOCKED_BY_FAILURES)
    processor = uuid4()
    entry_uuid = await dlq_record_max_retries_exceeded(
        conn, task_uuid, exhausted_step_uuids=[steps["a"]], processor_uuid=processor, metadata={"note": "x"}
    )
    assert entry_uuid is not None
    entry = await dlq_get(conn, entry_uuid)
    assert entry["dlq_reason"] == "max_retries_exceeded"
    assert entry["original_state"] == "blocked_by_failures"
    assert entry["metadata"] == {
        "detection_method": "retries_exhausted",
        "exhausted_step_uuids": [str(steps["a"])],
        "processor_uuid": str(processor),
        "note": "x",
    }
    assert entry["task_snapshot"]["current_state"] == "blocked_by_failures"


async def test_update_sets_resolution_fields_and_merges_metadata(conn: Connection) -> None:
    task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
    entry_uuid = await dlq_create_entry(
        conn, task_uuid, reason="staleness_timeout", original_state="steps_in_process", metadata={"a": 1, "b": 1}
    )
    assert entry_uuid is not None

    notes_only = await dlq_update(conn, entry_uuid, resolution_notes="looking")
    assert notes_only["resolution_status"] == "pending"
    assert notes_only["resolution_timestamp"] is None
    assert notes_only["resolution_notes"] == "looking"

    updated = await dlq_update(
        conn,
        entry_uuid,
        resolution_status="manually_resolved",
        resolved_by="alice",
        metadata={"b": 2, "ticket": "OPS-1"},
    )
    assert updated["resolution_status"] == "manually_resolved"
    assert updated["resolution_timestamp"] is not None
    assert updated["resolution_notes"] == "looking"  # kept: not given again
    assert updated["resolved_by"] == "alice"
    assert updated["metadata"] == {"a": 1, "b": 2, "ticket": "OPS-1"}
    assert updated["updated_at"] > notes_only["created_at"]
    assert await dlq_get(conn, entry_uuid) == updated


async def test_update_refuses_unknown_status_and_entry(conn: Connection) -> None:
    task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
    entry_uuid = await dlq_create_entry(conn, task_uuid, reason="manual_dlq", original_state="steps_in_process")
    assert entry_uuid is not None
    with pytest.raises(InvalidDlqRequestError, match=r"unknown resolution status 'fixed'.*manually_resolved"):
        await dlq_update(conn, entry_uuid, resolution_status="fixed")
    assert (await dlq_get(conn, entry_uuid))["resolution_status"] == "pending"
    with pytest.raises(NotFoundError):
        await dlq_update(conn, uuid4(), resolution_status="cancelled")
    with pytest.raises(NotFoundError):
        await dlq_get(conn, uuid4())


async def test_list_filters_and_paginates(conn: Connection) -> None:
    entries: list[UUID] = []
    tasks: list[UUID] = []
    for reason in ["staleness_timeout", "staleness_timeout", "max_retries_exceeded", "manual_dlq", "manual_dlq"]:
        task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
        entry = await dlq_create_entry(conn, task_uuid, reason=reason, original_state="steps_in_process")  # type: ignore[arg-type]
        assert entry is not None
        entries.append(entry)
        tasks.append(task_uuid)
    await dlq_update(conn, entries[1], resolution_status="permanently_failed")

    everything = await dlq_list(conn)
    assert everything.total == 5
    assert [e["dlq_entry_uuid"] for e in everything.entries] == list(reversed(entries))

    page = await dlq_list(conn, limit=2, offset=2)
    assert (page.total, page.limit, page.offset) == (5, 2, 2)
    assert [e["dlq_entry_uuid"] for e in page.entries] == [entries[2], entries[1]]

    pending = await dlq_list(conn, resolution_status="pending")
    assert pending.total == 4 and entries[1] not in [e["dlq_entry_uuid"] for e in pending.entries]
    stale = await dlq_list(conn, dlq_reason="staleness_timeout", resolution_status="pending")
    assert [e["dlq_entry_uuid"] for e in stale.entries] == [entries[0]]
    of_task = await dlq_list(conn, task_uuid=tasks[3])
    assert [e["dlq_entry_uuid"] for e in of_task.entries] == [entries[3]]

    with pytest.raises(InvalidDlqRequestError, match="unknown DLQ reason"):
        await dlq_list(conn, dlq_reason="bored")
    with pytest.raises(InvalidDlqRequestError, match="unknown resolution status"):
        await dlq_list(conn, resolution_status="done")


# --- views ----------------------------------------------------------------------------------------------------


async def test_task_state_analysis_lists_incomplete_tasks(conn: Connection) -> None:
    processing, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=12, age_minutes=40)
    pending, _ = await task_in(conn, TaskState.PENDING)
    done, _ = await task_in(conn, TaskState.EVALUATING_RESULTS)
    await task_transition(conn, TaskChange(done, TaskState.EVALUATING_RESULTS, [E.ALL_STEPS_SUCCESSFUL]))

    rows = await (await conn.execute("SELECT * FROM tasker.v_task_state_analysis")).fetchall()
    by_uuid = {r["task_uuid"]: r for r in rows}
    assert set(by_uuid) == {processing, pending}
    row = by_uuid[processing]
    assert row["current_state"] == "steps_in_process"
    assert row["task_name"] == "factory"
    assert row["namespace_name"].startswith("ns_")
    assert row["template_config"] == {}
    assert 12 <= row["time_in_state_minutes"] < 13
    assert 40 <= row["task_age_minutes"] < 41
    assert row["priority"] == 0
    assert row["complete"] is False
    assert by_uuid[pending]["current_state"] == "pending"


async def test_staleness_monitoring_health(conn: Connection) -> None:
    stale, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=31)
    warning, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=25)  # 83 % of 30
    healthy, _ = await task_in(conn, TaskState.WAITING_FOR_DEPENDENCIES, in_state_minutes=10)
    overridden, _ = await task_in(conn, TaskState.WAITING_FOR_RETRY, in_state_minutes=2)
    await set_template_config(conn, overridden, {"lifecycle": {"max_waiting_for_retry_minutes": 1}})
    await task_in(conn, TaskState.BLOCKED_BY_FAILURES, in_state_minutes=600)  # not watched

    rows = await (await conn.execute("SELECT * FROM tasker.v_task_staleness_monitoring")).fetchall()
    by_uuid = {r["task_uuid"]: r for r in rows}
    assert set(by_uuid) == {stale, warning, healthy, overridden}
    assert {u: r["health_status"] for u, r in by_uuid.items()} == {
        stale: "stale",
        warning: "warning",
        healthy: "healthy",
        overridden: "stale",
    }
    assert by_uuid[healthy]["staleness_threshold_minutes"] == 60
    assert by_uuid[overridden]["staleness_threshold_minutes"] == 1

    # the configured defaults replace the built-in ones
    custom = await dlq_staleness_monitoring(conn, SHORT)
    assert {r["task_uuid"]: r["health_status"] for r in custom} == {
        stale: "stale",
        warning: "stale",
        healthy: "stale",
        overridden: "stale",
    }
    only_warning = await dlq_staleness_monitoring(conn, health_status="warning")
    assert [r["task_uuid"] for r in only_warning] == [warning]
    with pytest.raises(InvalidDlqRequestError):
        await dlq_staleness_monitoring(conn, health_status="sick")


async def test_dlq_dashboard_counts_by_reason(conn: Connection) -> None:
    created: list[UUID] = []
    for reason in ["staleness_timeout", "staleness_timeout", "staleness_timeout", "max_retries_exceeded"]:
        task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
        entry = await dlq_create_entry(conn, task_uuid, reason=reason, original_state="steps_in_process")  # type: ignore[arg-type]
        assert entry is not None
        created.append(entry)
    await dlq_update(conn, created[0], resolution_status="manually_resolved")
    await dlq_update(conn, created[1], resolution_status="cancelled")
    # entry 0 took 30 minutes to resolve, entry 1 took 10
    await conn.execute(
        "UPDATE tasker.tasks_dlq SET dlq_timestamp = resolution_timestamp - interval '30 minutes'"
        " WHERE dlq_entry_uuid = %s",
        [created[0]],
    )
    await conn.execute(
        "UPDATE tasker.tasks_dlq SET dlq_timestamp = resolution_timestamp - interval '10 minutes'"
        " WHERE dlq_entry_uuid = %s",
        [created[1]],
    )

    stats = {r["dlq_reason"]: r for r in await dlq_stats(conn)}
    assert set(stats) == {"staleness_timeout", "max_retries_exceeded"}
    stale = stats["staleness_timeout"]
    assert (stale["total_entries"], stale["pending"], stale["manually_resolved"]) == (3, 1, 1)
    assert (stale["permanent_failures"], stale["cancelled"]) == (0, 1)
    assert stale["avg_resolution_time_minutes"] == pytest.approx(20.0, abs=0.01)
    assert stale["oldest_entry"] < stale["newest_entry"]
    retries = stats["max_retries_exceeded"]
    assert (retries["total_entries"], retries["pending"]) == (1, 1)
    assert retries["avg_resolution_time_minutes"] is None


async def test_investigation_queue_orders_by_priority_score(conn: Connection) -> None:
    async def entry(reason: str, minutes_ago: float) -> UUID:
        task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
        made = await dlq_create_entry(
            conn,
            task_uuid,
            reason=reason,  # type: ignore[arg-type]
            original_state="steps_in_process",
            metadata={"time_in_state_minutes": 42.5},
        )
        assert made is not None
        await conn.execute(
            "UPDATE tasker.tasks_dlq SET dlq_timestamp = dlq_timestamp - make_interval(secs => %s)"
            " WHERE dlq_entry_uuid = %s",
            [minutes_ago * 60, made],
        )
        return made

    fresh_cycle = await entry("dependency_cycle_detected", 0)  # 1000
    old_stale = await entry("staleness_timeout", 950)  # 100 + 950
    retries = await entry("max_retries_exceeded", 10)  # 510
    manual = await entry("manual_dlq", 5)  # 15
    resolved = await entry("worker_unavailable", 5000)
    await dlq_update(conn, resolved, resolution_status="permanently_failed")

    queue = await dlq_investigation_queue(conn)
    assert [r["dlq_entry_uuid"] for r in queue] == [old_stale, fresh_cycle, retries, manual]
    scores = {r["dlq_entry_uuid"]: r["priority_score"] for r in queue}
    assert scores[old_stale] == pytest.approx(1050, abs=0.5)
    assert scores[fresh_cycle] == pytest.approx(1000, abs=0.5)
    assert scores[retries] == pytest.approx(510, abs=0.5)
    assert scores[manual] == pytest.approx(15, abs=0.5)
    first = queue[0]
    assert first["minutes_in_dlq"] == pytest.approx(950, abs=0.5)
    assert first["time_in_state_minutes"] == 42.5
    assert first["current_state"] == "steps_in_process"
    assert first["task_name"] == "factory"
    assert len(await dlq_investigation_queue(conn, limit=2)) == 2


# --- the CLI (in process, against the same database) ----------------------------------------------------------


def test_cli_list_get_update_stats(db_url: str) -> None:
    from typer.testing import CliRunner

    from tasker.cli.dlq import app

    async def setup() -> tuple[UUID, UUID]:
        conn = await connect(db_url)
        try:
            task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS)
            entry = await dlq_create_entry(
                conn, task_uuid, reason="staleness_timeout", original_state="steps_in_process"
            )
            assert entry is not None
            return task_uuid, entry
        finally:
            await conn.close()

    task_uuid, entry_uuid = asyncio.run(setup())
    runner = CliRunner()
    env = {"TASKER_DATABASE_URL": db_url}

    def cli(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    listed = cli("list", "--status", "pending")
    assert listed["total"] == 1 and listed["entries"][0]["dlq_entry_uuid"] == str(entry_uuid)
    assert cli("get", str(task_uuid))["dlq_entry_uuid"] == str(entry_uuid)
    assert cli("get", str(entry_uuid))["task_uuid"] == str(task_uuid)
    updated = cli("update", str(entry_uuid), "--status", "cancelled", "--resolved-by", "bob", "--metadata", '{"k": 1}')
    assert (updated["resolution_status"], updated["resolved_by"], updated["metadata"]) == ("cancelled", "bob", {"k": 1})
    (row,) = cli("stats")
    assert (row["dlq_reason"], row["total_entries"], row["cancelled"]) == ("staleness_timeout", 1, 1)
    assert cli("queue") == []
    assert cli("sweep", "--dry-run") == []

    refused = runner.invoke(app, ["update", str(entry_uuid), "--status", "fixed"], env=env)
    assert refused.exit_code == 1
    assert "unknown resolution status 'fixed'" in refused.stderr
    human = runner.invoke(app, ["get", str(entry_uuid)], env=env)
    assert human.exit_code == 0 and "cancelled" in human.stdout
