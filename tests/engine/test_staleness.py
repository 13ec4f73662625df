"""The staleness sweep on real PostgreSQL: stale tasks get a DLQ entry and move to ``error`` through the guarded
transition API; dry runs write nothing; template ``lifecycle`` values win over the configured defaults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import pytest

import tasker.engine.staleness as staleness
from tasker.engine.staleness import StalenessDefaults, sweep_periodically, sweep_stale_tasks
from tasker.engine.task_requests import create_task
from tasker.messaging.pgmq import PgmqTransport
from tasker.model.machines import TaskEvent
from tasker.model.requests import TaskRequest
from tasker.model.states import TaskState
from tasker.model.template import load_template_text
from tasker.store.db import Connection, connect
from tasker.store.dlq import StalenessThresholds, StaleTask, dlq_entries_for_task, dlq_update
from tasker.store.tasks import task_get
from tasker.store.templates import template_register
from tasker.store.transitions import TaskChange, task_transition
from tests.store.test_dlq import age, one, task_in

SHORT = StalenessDefaults(
    waiting_for_dependencies_minutes=10,
    waiting_for_retry_minutes=5,
    steps_in_process_minutes=5,
    task_max_lifetime_hours=24,
    interval_seconds=0.05,
)


async def state_of(conn: Connection, task_uuid: UUID) -> TaskState:
    return TaskState((await task_get(conn, task_uuid))["state"])


async def counts(conn: Connection) -> dict[str, int]:
    row = await one(
        conn,
        "SELECT (SELECT count(*) FROM tasker.tasks_dlq) AS entries,"
        " (SELECT count(*) FROM tasker.task_transitions) AS transitions",
    )
    return {k: int(v) for k, v in row.items()}


async def sweep(conn: Connection, defaults: StalenessDefaults = SHORT, **kwargs: Any) -> staleness.SweepReport:
    options: dict[str, Any] = {"dry_run": False, "batch_size": 100, "processor_uuid": None, **kwargs}
    return await sweep_stale_tasks(conn, defaults=defaults, **options)


async def test_stale_task_in_steps_in_process_goes_to_dlq_and_error(conn: Connection) -> None:
    stuck, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=6)
    fresh, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=4)
    processor = uuid4()

    report = await sweep(conn, processor_uuid=processor)

    assert report.found == 1 and report.moved_to_dlq == 1 and report.transitioned_to_error == 1
    (outcome,) = report.outcomes
    assert (outcome.task_uuid, outcome.action, outcome.state) == (stuck, "moved_to_dlq_and_error", "steps_in_process")
    assert await state_of(conn, stuck) is TaskState.ERROR
    assert await state_of(conn, fresh) is TaskState.STEPS_IN_PROCESS

    (entry,) = await dlq_entries_for_task(conn, stuck)
    assert entry["dlq_entry_uuid"] == outcome.dlq_entry_uuid
    assert entry["dlq_reason"] == "staleness_timeout"
    assert entry["resolution_status"] == "pending"
    assert entry["original_state"] == "steps_in_process"
    assert entry["metadata"]["detection_method"] == "automatic_staleness"
    assert entry["metadata"]["threshold_minutes"] == 5
    assert 6 <= entry["metadata"]["time_in_state_minutes"] < 7
    assert entry["metadata"]["processor_uuid"] == str(processor)
    assert entry["task_snapshot"]["current_state"] == "steps_in_process"
    assert len(entry["task_snapshot"]["steps"]) == 2
    assert await dlq_entries_for_task(conn, fresh) == []

    transition = await one(
        conn,
        "SELECT from_state, to_state, metadata, processor_uuid FROM tasker.task_transitions"
        " WHERE task_uuid = %s AND most_recent",
        [stuck],
    )
    assert (transition["from_state"], transition["to_state"]) == ("steps_in_process", "error")
    assert transition["metadata"]["event"] == TaskEvent.STALE
    assert transition["metadata"]["reason"] == "staleness_timeout"
    assert transition["metadata"]["dlq_entry_uuid"] == str(entry["dlq_entry_uuid"])
    assert transition["processor_uuid"] == processor


async def test_every_watched_state_and_the_lifetime(conn: Connection) -> None:
    retrying, _ = await task_in(conn, TaskState.WAITING_FOR_RETRY, in_state_minutes=6)
    waiting, _ = await task_in(conn, TaskState.WAITING_FOR_DEPENDENCIES, in_state_minutes=11)
    ancient, _ = await task_in(conn, TaskState.WAITING_FOR_DEPENDENCIES, in_state_minutes=1, age_minutes=24 * 60 + 5)
    blocked, _ = await task_in(conn, TaskState.BLOCKED_BY_FAILURES, in_state_minutes=10_000)

    report = await sweep(conn)

    assert {o.task_uuid: o.detection_method for o in report.outcomes} == {
        retrying: "automatic_staleness",
        waiting: "automatic_staleness",
        ancient: "max_lifetime_exceeded",
    }
    for task_uuid in (retrying, waiting, ancient):
        assert await state_of(conn, task_uuid) is TaskState.ERROR
    assert await state_of(conn, blocked) is TaskState.BLOCKED_BY_FAILURES


async def test_dry_run_writes_nothing(conn: Connection) -> None:
    stuck, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=60)
    before = await counts(conn)

    report = await sweep(conn, dry_run=True)

    assert report.dry_run and report.found == 1
    assert [o.action for o in report.outcomes] == ["would_move_to_dlq_and_error"]
    assert report.moved_to_dlq == 0
    assert await counts(conn) == before
    assert await state_of(conn, stuck) is TaskState.STEPS_IN_PROCESS

    # the real sweep then does what the dry run said
    assert (await sweep(conn)).moved_to_dlq == 1
    assert await counts(conn) == {"entries": before["entries"] + 1, "transitions": before["transitions"] + 1}


async def test_second_sweep_adds_no_entry(conn: Connection) -> None:
    stuck, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=30)
    assert (await sweep(conn)).moved_to_dlq == 1
    again = await sweep(conn)
    assert again.found == 0 and again.outcomes == []
    assert len(await dlq_entries_for_task(conn, stuck)) == 1

    # resumed by an operator while the entry is still pending, and stuck again: still one pending entry, and the
    # task is left to the open investigation
    await task_transition(
        conn,
        TaskChange(stuck, TaskState.ERROR, [TaskEvent.RESUME, TaskEvent.READY_STEPS_FOUND, TaskEvent.STEPS_ENQUEUED]),
    )
    await age(conn, stuck, in_state_minutes=30)
    assert (await sweep(conn)).found == 0
    assert len(await dlq_entries_for_task(conn, stuck)) == 1
    assert await state_of(conn, stuck) is TaskState.STEPS_IN_PROCESS

    # once the entry is resolved, the next stall opens a new one
    (entry,) = await dlq_entries_for_task(conn, stuck)
    await dlq_update(conn, entry["dlq_entry_uuid"], resolution_status="manually_resolved", resolved_by="ops")
    assert (await sweep(conn)).moved_to_dlq == 1
    entries = await dlq_entries_for_task(conn, stuck)
    assert [e["resolution_status"] for e in entries] == ["pending", "manually_resolved"]


LIFECYCLE_TEMPLATE = """
name: stale_{suffix}
namespace_name: staleness_{suffix}
version: 1.0.0
{lifecycle}
steps:
  - name: only_step_{suffix}
    handler: {{ callable: tests.handlers.scenarios.Succeed }}
"""


async def create_from_template(conn: Connection, lifecycle: str) -> UUID:
    suffix = uuid4().hex[:8]
    template = load_template_text(LIFECYCLE_TEMPLATE.format(suffix=suffix, lifecycle=lifecycle), "stale.yaml")
    await template_register(conn, template)
    request = TaskRequest(namespace=template.namespace_name, name=template.name, version="1.0.0")
    created = await create_task(conn, PgmqTransport(), request, env="test")
    assert created.state is TaskState.STEPS_IN_PROCESS
    return created.task_uuid


async def test_template_lifecycle_wins_over_configured_default(conn: Connection) -> None:
    strict = await create_from_template(conn, "lifecycle: { max_steps_in_process_minutes: 1 }")
    plain = await create_from_template(conn, "")
    for task_uuid in (strict, plain):
        await age(conn, task_uuid, in_state_minutes=2)
    defaults = StalenessDefaults(steps_in_process_minutes=60)

    report = await sweep(conn, defaults)

    assert [(o.task_uuid, o.threshold_minutes) for o in report.outcomes] == [(strict, 1)]
    assert await state_of(conn, strict) is TaskState.ERROR
    assert await state_of(conn, plain) is TaskState.STEPS_IN_PROCESS
    (entry,) = await dlq_entries_for_task(conn, strict)
    assert entry["metadata"]["threshold_minutes"] == 1
    assert entry["task_snapshot"]["task_name"].startswith("stale_")

    # and the other way round: a template may allow longer than the default
    patient = await create_from_template(conn, "lifecycle: { max_steps_in_process_minutes: 120 }")
    await age(conn, patient, in_state_minutes=90)
    assert (await sweep(conn, defaults)).found == 0
    assert await state_of(conn, patient) is TaskState.STEPS_IN_PROCESS


async def test_staleness_action_error_and_none(conn: Connection) -> None:
    error_only = await create_from_template(
        conn, "lifecycle: { max_steps_in_process_minutes: 1, staleness_action: error }"
    )
    ignored = await create_from_template(conn, "lifecycle: { max_steps_in_process_minutes: 1, staleness_action: none }")
    for task_uuid in (error_only, ignored):
        await age(conn, task_uuid, in_state_minutes=5)

    dry = await sweep(conn, dry_run=True)
    assert [(o.task_uuid, o.action) for o in dry.outcomes] == [(error_only, "would_transition_to_error")]

    report = await sweep(conn)
    assert [(o.task_uuid, o.action, o.dlq_entry_uuid) for o in report.outcomes] == [
        (error_only, "transitioned_to_error", None)
    ]
    assert await state_of(conn, error_only) is TaskState.ERROR
    assert await dlq_entries_for_task(conn, error_only) == []
    assert await state_of(conn, ignored) is TaskState.STEPS_IN_PROCESS
    assert await dlq_entries_for_task(conn, ignored) == []


async def test_task_that_moved_after_it_was_found_is_left_alone(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=30)
    found = staleness.dlq_find_stale_tasks

    async def find_then_progress(
        conn: Connection, thresholds: StalenessThresholds, *, batch_size: int = 100
    ) -> list[StaleTask]:
        candidates = await found(conn, thresholds, batch_size=batch_size)
        # a step result arrives between the search and the sweep's lock
        await task_transition(conn, TaskChange(stuck, TaskState.STEPS_IN_PROCESS, [TaskEvent.STEP_COMPLETED]))
        return candidates

    monkeypatch.setattr(staleness, "dlq_find_stale_tasks", find_then_progress)
    before = await counts(conn)

    report = await sweep(conn)

    assert [(o.task_uuid, o.action) for o in report.outcomes] == [(stuck, "skipped_no_longer_stale")]
    assert await state_of(conn, stuck) is TaskState.EVALUATING_RESULTS
    assert await counts(conn) == {"entries": before["entries"], "transitions": before["transitions"] + 1}


async def test_batch_size_limits_one_sweep(conn: Connection) -> None:
    tasks = [(await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=10 + i))[0] for i in range(3)]
    first = await sweep(conn, batch_size=2)
    assert [o.task_uuid for o in first.outcomes] == [tasks[2], tasks[1]]  # longest in state first
    second = await sweep(conn, batch_size=2)
    assert [o.task_uuid for o in second.outcomes] == [tasks[0]]


async def test_periodic_sweep_runs_until_stopped(db_url: str, conn: Connection) -> None:
    stuck, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=30)

    @asynccontextmanager
    async def connection() -> AsyncIterator[Connection]:
        own = await connect(db_url)
        try:
            yield own
        finally:
            await own.close()

    stop = asyncio.Event()
    loop = asyncio.create_task(sweep_periodically(connection, stop, defaults=SHORT, batch_size=10))
    for _ in range(200):
        if await state_of(conn, stuck) is TaskState.ERROR:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert await state_of(conn, stuck) is TaskState.ERROR
    assert len(await dlq_entries_for_task(conn, stuck)) == 1
