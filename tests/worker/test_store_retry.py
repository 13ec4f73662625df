"""A finished handler's result survives a failed store: dead pooled connections (a database restart, killed
backends) and a store interrupted mid-statement are retried while the lease holds, so the handler runs once and
the step gets one result and one audit row."""

from __future__ import annotations

from pathlib import Path

from tasker.store.db import Connection
from tests.e2e.runtime import create, running, wait_settled
from tests.worker.support import (
    NAMESPACE,
    audit_rows,
    lines,
    only_step,
    register_worker_templates,
    until,
    worker_running,
)


async def _terminate(conn: Connection, where: str) -> int:
    """Kill this database's backends matching ``where``; returns how many."""
    rows = await (
        await conn.execute(
            "SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity"
            f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
        )
    ).fetchall()
    return sum(1 for row in rows if row["killed"])


async def _assert_ran_once(conn: Connection, task_uuid: object, run_file: Path) -> None:
    task = await wait_settled(conn, task_uuid, timeout=90)  # type: ignore[arg-type]
    assert task["state"] == "complete"
    step = await only_step(conn, task["task_uuid"])
    assert step["attempts"] == 1
    assert len(lines(run_file)) == 1, f"the handler ran more than once: {lines(run_file)}"
    audits = await audit_rows(conn, step["workflow_step_uuid"])
    assert [a["success"] for a in audits] == [True]


async def test_dead_pooled_connections_do_not_lose_a_finished_result(
    conn: Connection, db_url: str, tmp_path: Path
) -> None:
    await register_worker_templates(conn)
    run_file, release = tmp_path / "runs", tmp_path / "release"
    async with running(db_url, [NAMESPACE], workers=0), worker_running(db_url, concurrency=1, lease_seconds=6):
        created = await create(conn, NAMESPACE, "gated", {"run_file": str(run_file), "release_file": str(release)})

        async def started() -> bool:
            return len(lines(run_file)) == 1

        await until(started, what="the handler to start")
        # every idle connection of the worker's pool dies, as after a database restart
        assert await _terminate(conn, "application_name = 'tasker-worker'") >= 1
        release.touch()
        await _assert_ran_once(conn, created.task_uuid, run_file)


async def test_a_store_interrupted_mid_statement_is_retried(conn: Connection, db_url: str, tmp_path: Path) -> None:
    await register_worker_templates(conn)
    run_file, release = tmp_path / "runs", tmp_path / "release"
    async with running(db_url, [NAMESPACE], workers=0), worker_running(db_url, concurrency=1, lease_seconds=6):
        created = await create(conn, NAMESPACE, "gated", {"run_file": str(run_file), "release_file": str(release)})

        async def started() -> bool:
            return len(lines(run_file)) == 1

        await until(started, what="the handler to start")
        step = await only_step(conn, created.task_uuid)
        async with conn.transaction():
            # hold the step's current transition so the worker's store blocks on it, then kill that store
            await conn.execute(
                "SELECT 1 FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = %s AND most_recent"
                " FOR UPDATE",
                [step["workflow_step_uuid"]],
            )
            release.touch()

            async def store_blocked() -> bool:
                row = await (
                    await conn.execute(
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                        " AND application_name = 'tasker-worker' AND wait_event_type = 'Lock'"
                    )
                ).fetchone()
                return row is not None and row["n"] >= 1

            await until(store_blocked, what="the worker's store to wait on the lock")
            assert await _terminate(conn, "application_name = 'tasker-worker' AND wait_event_type = 'Lock'") == 1
        await _assert_ran_once(conn, created.task_uuid, run_file)
