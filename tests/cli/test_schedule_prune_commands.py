"""``tasker schedule ...`` and ``tasker db prune`` run in this process against the test's own database."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tasker.engine.schedules import fire_next_due
from tasker.messaging.pgmq import PgmqTransport
from tasker.store.db import connect
from tests.api.server import register_templates
from tests.cli.coverage import covers, invoke
from tests.e2e.runtime import create, running, wait_settled

LINEAR = ["--namespace", "linear_workflow", "--name", "mathematical_sequence"]


def ok(result: Any) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return str(result.stdout)


def refused(result: Any) -> str:
    assert result.exit_code == 1, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    lines = str(result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def query(db_url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    async def _query() -> list[dict[str, Any]]:
        conn = await connect(db_url)
        try:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall() if cursor.description else []
        finally:
            await conn.close()

    return asyncio.run(_query())


@pytest.fixture
def registered(db_url: str) -> str:
    register_templates(db_url)
    return db_url


@covers("schedule add", "schedule list", "schedule show", "schedule disable", "schedule enable", "schedule remove")
def test_schedule_commands(registered: str) -> None:
    db_url = registered
    options = ["--context", '{"even_number": 2}', "--timezone", "Europe/Paris", "--tags", '["cron"]']
    added = ok(invoke(db_url, "schedule", "add", "nightly", "--cron", "0 3 * * *", *LINEAR, *options))
    assert "schedule nightly added (enabled); next run" in added
    listed = json.loads(ok(invoke(db_url, "schedule", "list", "--json")))
    assert [(s["name"], s["cron"], s["timezone"], s["context"], s["tags"]) for s in listed] == [
        ("nightly", "0 3 * * *", "Europe/Paris", {"even_number": 2}, ["cron"])
    ]
    assert "nightly" in ok(invoke(db_url, "schedule", "list"))
    query(db_url, "UPDATE tasker_ext.schedules SET next_run_at = now() - interval '1 second'")

    async def fire() -> None:
        conn = await connect(db_url)
        try:
            await fire_next_due(conn, PgmqTransport(), env="test")
        finally:
            await conn.close()

    asyncio.run(fire())
    shown = json.loads(ok(invoke(db_url, "schedule", "show", "nightly", "--json")))
    assert len(shown["runs"]) == 1 and shown["runs"][0]["task_uuid"] == str(shown["last_task_uuid"])
    assert str(shown["last_task_uuid"]) in ok(invoke(db_url, "schedule", "show", "nightly"))
    assert "disabled" in ok(invoke(db_url, "schedule", "disable", "nightly"))
    assert query(db_url, "SELECT enabled FROM tasker_ext.schedules")[0]["enabled"] is False
    assert "enabled; next run" in ok(invoke(db_url, "schedule", "enable", "nightly"))
    assert "removed" in ok(invoke(db_url, "schedule", "remove", "nightly"))
    assert query(db_url, "SELECT count(*) AS n FROM tasker_ext.schedules")[0]["n"] == 0
    assert query(db_url, "SELECT count(*) AS n FROM tasker.tasks")[0]["n"] == 1  # its task stays
    assert "no schedule named 'nightly'" in refused(invoke(db_url, "schedule", "remove", "nightly"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "99 * * * *", *LINEAR], "cron expression '99 * * * *' is not valid"),
        (["--cron", "* * *", *LINEAR], "expected 5 fields"),
        (["--cron", "* * * * *", *LINEAR, "--timezone", "Mars/Base"], "time zone 'Mars/Base' is unknown"),
        (["--cron", "* * * * *", "--namespace", "linear_workflow", "--name", "nope"], "nope"),
        (["--cron", "* * * * *", *LINEAR, "--context", '{"even_number": "x"}'], "/even_number"),
        (["--cron", "* * * * *", *LINEAR, "--context", "{oops"], "--context is not valid JSON"),
    ],
)
@covers("schedule add")
def test_schedule_add_refuses_bad_input_in_one_line_writing_nothing(
    registered: str, args: list[str], message: str
) -> None:
    line = refused(invoke(registered, "schedule", "add", "broken", *args))
    assert line.startswith("error") and message in line, line
    assert query(registered, "SELECT count(*) AS n FROM tasker_ext.schedules")[0]["n"] == 0


@covers("schedule add")
def test_schedule_add_refuses_a_taken_name(registered: str) -> None:
    ok(invoke(registered, "schedule", "add", "dup", "--cron", "* * * * *", *LINEAR, "--context", '{"even_number": 2}'))
    line = refused(invoke(registered, "schedule", "add", "dup", "--cron", "*/5 * * * *", *LINEAR,
                          "--context", '{"even_number": 2}'))  # fmt: skip
    assert line == "error (CONFLICT): a schedule named 'dup' already exists"


@covers("db prune")
def test_db_prune_dry_run_then_archive(registered: str) -> None:
    db_url = registered

    async def finished() -> list[str]:
        conn = await connect(db_url)
        try:
            async with running(db_url, ["linear_workflow"]):
                tasks = [await create(conn, "linear_workflow", "mathematical_sequence", {"even_number": n})
                         for n in (2, 4)]  # fmt: skip
                for task in tasks:
                    await wait_settled(conn, task.task_uuid)
            await conn.execute(
                "UPDATE tasker.task_transitions SET created_at = created_at - interval '40 days' WHERE task_uuid = %s",
                [tasks[0].task_uuid],
            )
            return [str(t.task_uuid) for t in tasks]
        finally:
            await conn.close()

    old, recent = asyncio.run(finished())
    dry = json.loads(ok(invoke(db_url, "db", "prune", "--completed-before", "30d", "--dry-run", "--json")))
    assert dry["dry_run"] and dry["rows"]["tasks"] == 1 and dry["rows"]["workflow_steps"] == 4
    assert query(db_url, "SELECT count(*) AS n FROM tasker.tasks")[0]["n"] == 2
    shown = ok(invoke(db_url, "db", "prune", "--completed-before", "30d", "--dry-run"))
    assert "would remove 1 finished task(s)" in shown and "tasker.workflow_step_result_audit" in shown
    done = ok(invoke(db_url, "db", "prune", "--completed-before", "30d", "--batch-size", "1"))
    assert "removed 1 finished task(s)" in done and "archived 1 task(s) in tasker_ext.task_archive" in done
    assert [r["task_uuid"] for r in query(db_url, "SELECT task_uuid::text FROM tasker.tasks")] == [recent]
    assert [r["task_uuid"] for r in query(db_url, "SELECT task_uuid::text FROM tasker_ext.task_archive")] == [old]
    deleted = json.loads(ok(invoke(db_url, "db", "prune", "--completed-before", "2000-01-01", "--delete", "--json")))
    assert deleted["mode"] == "delete" and deleted["rows"]["tasks"] == 0
    assert "cutoff 'tomorrow'" in refused(invoke(db_url, "db", "prune", "--completed-before", "tomorrow"))
