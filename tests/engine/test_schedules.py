"""Schedules on a real database: checks at add time, one task per fired tick, catch-up, refused ticks, wake-ups."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tasker.engine.schedules import Scheduler, add_schedule, fire_next_due, remove_schedule, set_schedule_enabled
from tasker.errors import InvalidContextError, InvalidScheduleError, NotFoundError, ScheduleConflictError
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.router import SCHEDULES_CHANNEL
from tasker.messaging.wakeup import Wakeups
from tasker.model.schedules import ScheduleSpec
from tasker.store.db import Connection, create_pool
from tests.e2e.runtime import register_fixture_templates

LINEAR = {"namespace": "linear_workflow", "task_name": "mathematical_sequence", "context": {"even_number": 4}}


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def rows(conn: Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    return await (await conn.execute(query, params)).fetchall()


async def count(conn: Connection, table: str) -> int:
    return int((await rows(conn, f"SELECT count(*) AS n FROM {table}"))[0]["n"])


def spec(name: str = "every_minute", cron: str = "* * * * *", **extra: Any) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"name": name, "cron": cron, **LINEAR, **extra})


async def make_due(conn: Connection, name: str, ago: str) -> None:
    await conn.execute(
        "UPDATE tasker_ext.schedules SET next_run_at = now() - %s::interval WHERE name = %s", [ago, name]
    )


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"cron": "61 * * * *"}, InvalidScheduleError, "cron expression '61 \\* \\* \\* \\*' is not valid"),
        ({"timezone": "Mars/Olympus"}, InvalidScheduleError, "time zone 'Mars/Olympus' is unknown"),
        ({"task_name": "no_such_template"}, NotFoundError, "no_such_template"),
        ({"context": {"even_number": "six"}}, InvalidContextError, "/even_number"),
    ],
)
async def test_a_bad_schedule_is_refused_and_nothing_is_written(
    registered: Connection, change: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await add_schedule(registered, spec().model_copy(update=change), env="test")
    assert await count(registered, "tasker_ext.schedules") == 0


async def test_names_are_unique(registered: Connection) -> None:
    await add_schedule(registered, spec(), env="test")
    with pytest.raises(ScheduleConflictError, match="'every_minute' already exists"):
        await add_schedule(registered, spec(cron="*/5 * * * *"), env="test")
    assert await count(registered, "tasker_ext.schedules") == 1


async def test_nothing_fires_before_it_is_due(registered: Connection) -> None:
    await add_schedule(registered, spec(cron="0 0 1 1 *"), env="test")
    assert await fire_next_due(registered, PgmqTransport(), env="test") is None
    assert await count(registered, "tasker_ext.schedule_runs") == 0


async def test_each_due_tick_creates_one_task_even_for_a_strict_identity(registered: Connection) -> None:
    await add_schedule(registered, spec(), env="test")
    created = []
    for _ in range(2):  # the same context twice: the tick's idempotency key keeps identities apart
        await make_due(registered, "every_minute", "1 second")
        fired = await fire_next_due(registered, PgmqTransport(), env="test")
        assert fired is not None and fired.error is None and fired.missed_since is None
        created.append(fired)
        assert await fire_next_due(registered, PgmqTransport(), env="test") is None
    tasks = await rows(registered, "SELECT task_uuid, requested_at, context FROM tasker.tasks ORDER BY created_at")
    assert [t["task_uuid"] for t in tasks] == [f.task_uuid for f in created]
    assert all(t["context"] == {"even_number": 4} for t in tasks)
    assert tasks[0]["requested_at"] == created[0].scheduled_for.replace(tzinfo=None)
    schedule = (await rows(registered, "SELECT * FROM tasker_ext.schedules"))[0]
    assert schedule["last_task_uuid"] == created[1].task_uuid
    assert schedule["next_run_at"] > created[1].scheduled_for
    steps = await rows(registered, "SELECT count(*) AS n FROM tasker.workflow_steps")
    assert steps[0]["n"] == 8  # both tasks were created whole, through the engine's creation path


async def test_missed_ticks_make_one_catch_up_task(registered: Connection) -> None:
    await add_schedule(registered, spec(), env="test")
    await make_due(registered, "every_minute", "3 hours")  # 180 ticks missed
    fired = await fire_next_due(registered, PgmqTransport(), env="test")
    assert fired is not None and fired.task_uuid is not None and fired.missed_since is not None
    assert await fire_next_due(registered, PgmqTransport(), env="test") is None
    assert await count(registered, "tasker.tasks") == 1
    run = (await rows(registered, "SELECT * FROM tasker_ext.schedule_runs"))[0]
    assert run["missed_since"] == fired.missed_since and run["task_uuid"] == fired.task_uuid
    assert (fired.scheduled_for - fired.missed_since).total_seconds() >= 3 * 3600 - 60
    metadata = await rows(registered, "SELECT metadata FROM tasker.task_transitions WHERE sort_key = 1")
    about = metadata[0]["metadata"]["request"]["options"]["schedule"]
    assert about["name"] == "every_minute" and about["missed_since"] is not None


async def test_a_refused_tick_is_recorded_and_the_schedule_moves_on(registered: Connection) -> None:
    await add_schedule(registered, spec(), env="test")
    # the template's input schema no longer accepts the stored context (as after a template change)
    await registered.execute('UPDATE tasker_ext.schedules SET context = \'{"even_number": "x"}\'')
    await make_due(registered, "every_minute", "1 second")
    fired = await fire_next_due(registered, PgmqTransport(), env="test")
    assert fired is not None and fired.task_uuid is None and fired.error is not None
    assert "/even_number" in fired.error
    assert await count(registered, "tasker.tasks") == 0
    run = (await rows(registered, "SELECT task_uuid, error FROM tasker_ext.schedule_runs"))[0]
    assert run["task_uuid"] is None and "/even_number" in run["error"]
    assert await fire_next_due(registered, PgmqTransport(), env="test") is None  # not retried at once


async def test_disable_enable_and_remove(registered: Connection) -> None:
    await add_schedule(registered, spec(), env="test")
    await set_schedule_enabled(registered, "every_minute", False)
    await make_due(registered, "every_minute", "10 minutes")
    assert await fire_next_due(registered, PgmqTransport(), env="test") is None
    enabled = await set_schedule_enabled(registered, "every_minute", True)
    assert enabled["enabled"] and enabled["next_run_at"].timestamp() > time.time()  # no catch-up of disabled time
    await remove_schedule(registered, "every_minute")
    assert await count(registered, "tasker_ext.schedules") == 0
    with pytest.raises(NotFoundError, match="no schedule named 'every_minute'"):
        await remove_schedule(registered, "every_minute")


async def test_the_scheduler_sleeps_until_woken_by_a_change(registered: Connection, db_url: str) -> None:
    """Nothing scheduled: the scheduler sleeps its maximum (an hour here); adding a schedule due every second
    NOTIFYs it, and it fires within the test's deadline only because it was woken."""
    pool = create_pool(db_url, min_size=1, max_size=2)
    await pool.open()
    scheduler = Scheduler(pool.connection, PgmqTransport(), env="test", max_sleep_seconds=3600)
    wakeups = Wakeups(db_url, [], {SCHEDULES_CHANNEL: scheduler.wake})
    await wakeups.start()
    stop = asyncio.Event()
    loop = asyncio.create_task(scheduler.run(stop))
    try:
        await asyncio.sleep(0.2)  # let it reach its long sleep (if it has not yet, it reads the schedule anyway)
        await add_schedule(registered, spec(cron="* * * * * *"), env="test")
        deadline = time.monotonic() + 60
        while await count(registered, "tasker_ext.schedule_runs") < 2:
            assert time.monotonic() < deadline, "the scheduler was not woken by the new schedule"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await loop
        await wakeups.stop()
        await pool.close()
    assert scheduler.fired >= 2
