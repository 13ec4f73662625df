"""Orchestrators and workers as real processes: crash recovery, many of each at once, idle cost."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from uuid import UUID

import pytest

from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tests.e2e.processes import services, start, stop, wait_until_ready
from tests.e2e.runtime import create, register_fixture_templates, wait_settled


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def _wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{path} was never written")


async def _kill_the_worker_mid_step(registered: Connection, db_url: str, template: str, pid_file: Path) -> UUID:
    """Run ``template`` (whose sleeping step writes its pid and attempt to ``pid_file``) on a worker with a 2 s
    lease, kill that worker with -9 while the step sleeps, then let a fresh worker finish; returns the task."""
    with services(db_url, ["orchestrator"]):
        doomed = start(db_url, "worker", "-n", "runtime_checks", "--lease-seconds", "2", log_name="doomed")
        try:
            created = await create(
                registered, "runtime_checks", template, {"sleep_seconds": 3, "pid_file": str(pid_file)}
            )
            first = await _wait_for_file(pid_file)
            assert first.split() == [str(doomed.pid), "1"]
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
        finally:
            stop(doomed)
        with services(db_url, ["worker", "-n", "runtime_checks", "--lease-seconds", "2"]):
            task = await wait_settled(registered, created.task_uuid, timeout=40)
        assert task["state"] == "complete"
    return created.task_uuid


async def test_killed_worker_step_is_taken_over_within_a_lease(
    registered: Connection, db_url: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    task_uuid = await _kill_the_worker_mid_step(registered, db_url, "sleepy_chain", pid_file)
    steps = {s["name"]: s for s in await task_steps(registered, task_uuid)}
    first_step = steps["sleepy_first"]
    assert first_step["attempts"] == 2
    rows = await (
        await registered.execute(
            "SELECT to_state, metadata->>'event' AS event FROM tasker.workflow_step_transitions"
            " WHERE workflow_step_uuid = %s ORDER BY sort_key",
            [first_step["workflow_step_uuid"]],
        )
    ).fetchall()
    states = [r["to_state"] for r in rows]
    assert states.count("complete") == 1
    assert "lease_expired" in [r["event"] for r in rows]
    attempts_seen = [line.split()[1] for line in pid_file.read_text().split("\n") if line]
    assert attempts_seen == ["1", "2"]


async def test_a_step_claimed_in_the_previous_steps_store_is_taken_over_when_its_worker_is_killed(
    registered: Connection, db_url: str, tmp_path: Path
) -> None:
    """The fast path's continuation: the worker that completes ``quick_first`` claims ``sleepy_after`` in the same
    transaction and holds its message under a lease without ever reading it. Killed with -9 mid-step, it leaves
    the step in progress; once the lease runs out the message comes back as a redelivery and another worker takes
    the step over (a second attempt), exactly as for a step read from the queue."""
    pid_file = tmp_path / "pids"
    task_uuid = await _kill_the_worker_mid_step(registered, db_url, "sleepy_after_quick", pid_file)
    steps = {s["name"]: s for s in await task_steps(registered, task_uuid)}
    assert steps["sleepy_after"]["attempts"] == 2
    rows = await (
        await registered.execute(
            """SELECT s.name, x.to_state, x.metadata->>'event' AS event, x.created_at
               FROM tasker.workflow_step_transitions x JOIN tasker.workflow_steps w USING (workflow_step_uuid)
               JOIN tasker.named_steps s USING (named_step_uuid)
               WHERE w.task_uuid = %s ORDER BY s.name, x.sort_key""",
            [task_uuid],
        )
    ).fetchall()
    first_done = next(r["created_at"] for r in rows if r["name"] == "quick_first" and r["to_state"] == "complete")
    claims = [r for r in rows if r["name"] == "sleepy_after" and r["to_state"] == "in_progress"]
    assert claims[0]["created_at"] == first_done  # claimed in the transaction that completed quick_first
    assert "lease_expired" in [r["event"] for r in rows if r["name"] == "sleepy_after"]
    assert [r["to_state"] for r in rows if r["name"] == "sleepy_after"].count("complete") == 1
    assert [line.split()[1] for line in pid_file.read_text().split("\n") if line] == ["1", "2"]


async def test_two_orchestrators_two_workers_run_200_tasks(registered: Connection, db_url: str) -> None:
    worker = ["worker", "-n", "diamond_workflow", "--concurrency", "8"]
    with services(db_url, ["orchestrator"], ["orchestrator"], worker, worker):
        created = [
            await create(registered, "diamond_workflow", "diamond_pattern", {"even_number": n}) for n in range(200)
        ]
        for task in created:
            settled = await wait_settled(registered, task.task_uuid, timeout=120)
            assert settled["state"] == "complete"
    counts = await (
        await registered.execute(
            """
            SELECT count(*) FILTER (WHERE to_state = 'complete') AS completes,
                   count(DISTINCT workflow_step_uuid) AS steps,
                   (SELECT count(*) FROM tasker.tasks WHERE complete) AS tasks_complete
            FROM tasker.workflow_step_transitions
            """
        )
    ).fetchone()
    assert counts is not None
    assert counts["steps"] == 800 and counts["completes"] == 800 and counts["tasks_complete"] == 200
    per_step = await (
        await registered.execute(
            "SELECT max(n) AS most FROM (SELECT count(*) AS n FROM tasker.workflow_step_transitions"
            " WHERE to_state = 'complete' GROUP BY workflow_step_uuid) c"
        )
    ).fetchone()
    assert per_step is not None and per_step["most"] == 1
    depth = await (
        await registered.execute("SELECT coalesce(sum(queue_length), 0) AS depth FROM pgmq.metrics_all()")
    ).fetchone()
    assert depth is not None and depth["depth"] == 0


async def _applications(conn: Connection) -> set[str]:
    rows = await (
        await conn.execute(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database()"
            " AND application_name IN ('tasker-orchestrator', 'tasker-worker')"
        )
    ).fetchall()
    return {r["application_name"] for r in rows}


async def test_idle_services_cost_almost_nothing(registered: Connection, db_url: str) -> None:
    """Statements an idle orchestrator and worker send, seen by sampling pg_stat_activity every 20 ms: each new
    query_start of one of their connections is one statement. (Idle polls are seconds apart, so none is missed;
    autovacuum and other databases' load are not counted, unlike transaction counters.)"""

    async def sample() -> set[tuple[int, object]]:
        rows = await (
            await registered.execute(
                "SELECT pid, query_start FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name IN ('tasker-orchestrator', 'tasker-worker') AND query_start IS NOT NULL"
            )
        ).fetchall()
        return {(r["pid"], r["query_start"]) for r in rows}

    with services(db_url, ["orchestrator"], ["worker", "-n", "linear_workflow"]):
        # both services up (their LISTEN and pool connections visible), however slow the machine is to start them,
        # then time for their polls to back off to the idle interval (0.05 s doubling to 2-5 s: about 7 s)
        deadline = time.monotonic() + 120
        while {name for name in await _applications(registered)} != {"tasker-orchestrator", "tasker-worker"}:
            assert time.monotonic() < deadline, "the services never connected"
            await asyncio.sleep(0.1)
        await asyncio.sleep(8)
        seen = await sample()
        started = time.monotonic()
        statements = 0
        while time.monotonic() - started < 10:
            await asyncio.sleep(0.02)
            now = await sample()
            statements += len(now - seen)
            seen |= now
        elapsed = time.monotonic() - started
    per_second = statements / elapsed
    print(f"idle: {statements} statements in {elapsed:.1f} s")
    assert statements > 0, "the sampling sees the services' idle polls"
    assert per_second <= 5, f"idle orchestrator + worker sent {per_second:.1f} statements per second"


async def test_serve_runs_a_workflow_through_its_api_and_stops_cleanly(registered: Connection, db_url: str) -> None:
    import socket

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start(db_url, "serve", "-n", "linear_workflow", "--port", str(port), log_name="serve")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await wait_until_ready(client, "tasker serve", timeout=20)
            deadline = time.monotonic() + 20
            body = {
                "namespace": "linear_workflow",
                "name": "mathematical_sequence",
                "version": "1.0.0",
                "context": {"even_number": 4},
            }
            created = await client.post("/v1/tasks", json=body)
            assert created.status_code == 201, created.text
            task_uuid = created.json()["task_uuid"]
            while (await client.get(f"/v1/tasks/{task_uuid}")).json()["status"] not in ("complete", "error"):
                assert time.monotonic() < deadline + 20
                await asyncio.sleep(0.05)
            assert (await client.get(f"/v1/tasks/{task_uuid}")).json()["status"] == "complete"
    finally:
        assert stop(server) == 0


async def test_a_killed_worker_on_the_last_attempt_fails_the_step_without_running_it_again(
    registered: Connection, db_url: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    with services(db_url, ["orchestrator"]):
        doomed = start(db_url, "worker", "-n", "runtime_checks", "--lease-seconds", "2", log_name="doomed")
        try:
            created = await create(
                registered, "runtime_checks", "sleepy_single_attempt", {"sleep_seconds": 3, "pid_file": str(pid_file)}
            )
            await _wait_for_file(pid_file)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
        finally:
            stop(doomed)
        with services(db_url, ["worker", "-n", "runtime_checks", "--lease-seconds", "2"]):
            task = await wait_settled(registered, created.task_uuid, timeout=40)
    assert task["state"] == "blocked_by_failures"
    [step] = await task_steps(registered, created.task_uuid)
    assert step["state"] == "error" and step["attempts"] == 1, "max_attempts 1: no second attempt"
    assert step["results"]["error"]["error_type"] == "worker_lost"
    assert pid_file.read_text().count("\n") == 1, "the handler ran once"
