"""Schedules fired by real orchestrator processes racing on the same rows: one task per tick, one catch-up."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tasker.engine.schedules import add_schedule
from tasker.model.schedules import ScheduleSpec
from tasker.store.db import Connection
from tests.e2e.processes import ROOT, start, stop
from tests.e2e.runtime import register_fixture_templates

EVERY_SECOND = ScheduleSpec(
    name="every_second",
    cron="* * * * * *",
    namespace="linear_workflow",
    task_name="mathematical_sequence",
    context={"even_number": 2},
)


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def rows(conn: Connection, query: str, params: Any = None) -> list[dict[str, Any]]:
    return await (await conn.execute(query, params)).fetchall()


async def wait_runs(conn: Connection, condition: str, at_least: int, timeout: float = 90.0) -> None:
    """Poll until ``at_least`` schedule runs match ``condition``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await rows(conn, f"SELECT count(*) AS n FROM tasker_ext.schedule_runs WHERE {condition}")
        if found[0]["n"] >= at_least:
            return
        assert time.monotonic() < deadline, f"fewer than {at_least} runs where {condition} after {timeout} s"
        await asyncio.sleep(0.1)


class Orchestrators:
    """Real `tasker orchestrator` processes, each logging to its own file, read from where it started."""

    def __init__(self, db_url: str, count: int, tag: str) -> None:
        self.logs = [ROOT / ".cache" / f"{tag}{i}-{os.getpid()}-1.log" for i in range(count)]
        self.offsets = [path.stat().st_size if path.exists() else 0 for path in self.logs]
        self.processes = [start(db_url, "orchestrator", log_name=f"{tag}{i}") for i in range(count)]

    def stop(self) -> str:
        for process in self.processes:
            stop(process)
        return "".join(self._read(path, offset) for path, offset in zip(self.logs, self.offsets, strict=True))

    @staticmethod
    def _read(path: Path, offset: int) -> str:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")


async def assert_one_task_per_tick(conn: Connection) -> None:
    runs = await rows(conn, "SELECT scheduled_for, task_uuid, error FROM tasker_ext.schedule_runs")
    assert all(r["task_uuid"] is not None and r["error"] is None for r in runs), runs
    per_tick = await rows(
        conn,
        "SELECT requested_at, count(*) AS n FROM tasker.tasks GROUP BY requested_at HAVING count(*) > 1",
    )
    assert per_tick == [], f"ticks with more than one task: {per_tick}"
    tasks = await rows(conn, "SELECT task_uuid, requested_at FROM tasker.tasks")
    assert {t["task_uuid"] for t in tasks} == {r["task_uuid"] for r in runs}
    assert {t["requested_at"] for t in tasks} == {r["scheduled_for"].replace(tzinfo=None) for r in runs}


async def test_three_orchestrators_create_exactly_one_task_per_tick(registered: Connection, db_url: str) -> None:
    racing = Orchestrators(db_url, 3, "sched-race")
    try:
        await add_schedule(registered, EVERY_SECOND, env="test")
        await wait_runs(registered, "true", at_least=8)
    finally:
        logs = racing.stop()
    assert "firing schedules failed" not in logs
    await assert_one_task_per_tick(registered)
    ticks = await rows(registered, "SELECT count(DISTINCT scheduled_for) AS n FROM tasker_ext.schedule_runs")
    assert ticks[0]["n"] >= 8
    # which orchestrator fired a tick is a race; the test does not require them all to have won one
    winners = await rows(registered, "SELECT count(DISTINCT processor_uuid) AS n FROM tasker_ext.schedule_runs")
    assert 1 <= winners[0]["n"] <= 3


async def test_after_downtime_one_catch_up_task_then_ticks_resume(registered: Connection, db_url: str) -> None:
    await add_schedule(registered, EVERY_SECOND, env="test")
    # every orchestrator was down for ten minutes: 600 ticks missed
    await registered.execute("UPDATE tasker_ext.schedules SET next_run_at = now() - interval '10 minutes'")
    down_since: datetime = (await rows(registered, "SELECT next_run_at FROM tasker_ext.schedules"))[0]["next_run_at"]
    restarted = Orchestrators(db_url, 2, "sched-catchup")
    try:
        await wait_runs(registered, "true", at_least=4)
    finally:
        logs = restarted.stop()
    assert "firing schedules failed" not in logs
    catch_up = await rows(
        registered, "SELECT scheduled_for FROM tasker_ext.schedule_runs WHERE missed_since = %s", [down_since]
    )
    assert len(catch_up) == 1, "the missed ticks make exactly one catch-up run"
    earlier = await rows(
        registered,
        "SELECT count(*) AS n FROM tasker_ext.schedule_runs WHERE scheduled_for < %s",
        [catch_up[0]["scheduled_for"]],
    )
    assert earlier[0]["n"] == 0, "no missed tick was replayed before the catch-up"
    await assert_one_task_per_tick(registered)
