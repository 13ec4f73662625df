"""The worker's fast path: a successful result whose task lock is free is applied by the worker in the transaction
that stores it; busy tasks, failures and a local apply that fails go through an orchestrator as before.

Who applied a result is read from the audit trail: the ``complete`` transition names the process that wrote it
(``processor_uuid``), the ``in_progress`` transition names the worker that ran the step (``worker_uuid``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import pytest
from prometheus_client import REGISTRY
from psycopg import sql

import tasker.worker.process as worker_process
from tasker.messaging.router import STEP_RESULTS_QUEUE, channel
from tasker.store.db import Connection, connect
from tasker.store.tasks import task_lock, task_steps
from tests.e2e.runtime import create, register_fixture_templates, running, wait_settled


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def _trail(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    """Per step: who ran it, who completed it, and whether the result and the completion share a transaction."""
    rows = await (
        await conn.execute(
            """
            SELECT s.workflow_step_uuid,
                   max(t.metadata ->> 'worker_uuid') FILTER (WHERE t.to_state = 'in_progress') AS ran_by,
                   max(t.metadata ->> 'processor_uuid') FILTER (WHERE t.to_state = 'complete') AS completed_by,
                   count(*) FILTER (WHERE t.to_state = 'complete') AS completions,
                   max(t.created_at) FILTER (WHERE t.to_state = 'enqueued_for_orchestration')
                     = max(t.created_at) FILTER (WHERE t.to_state = 'complete') AS same_transaction,
                   (SELECT count(*) FROM tasker.workflow_step_result_audit a
                     WHERE a.workflow_step_uuid = s.workflow_step_uuid) AS audits
            FROM tasker.workflow_steps s
            JOIN tasker.workflow_step_transitions t ON t.workflow_step_uuid = s.workflow_step_uuid
            WHERE s.task_uuid = %s
            GROUP BY s.workflow_step_uuid
            """,
            [task_uuid],
        )
    ).fetchall()
    return list(rows)


async def _results_sent(conn: Connection) -> int:
    """Messages ever sent to the orchestrator's results queue."""
    row = await (await conn.execute("SELECT total_messages FROM pgmq.metrics('orchestration_step_results')")).fetchone()
    return int(row["total_messages"]) if row else 0


async def test_the_worker_applies_successful_results_itself(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["linear_workflow"]):
        created = await create(registered, "linear_workflow", "mathematical_sequence", {"even_number": 6})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    trail = await _trail(registered, created.task_uuid)
    assert len(trail) == 4
    for step in trail:
        assert step["completed_by"] == step["ran_by"], step  # the worker completed its own step
        assert step["same_transaction"] and step["completions"] == 1 and step["audits"] == 1
    assert await _results_sent(registered) == 0


async def test_results_applied_by_the_worker_wake_no_orchestrator(registered: Connection, db_url: str) -> None:
    """A store that announces nothing to the results queue sends no NOTIFY on its channel either (it used to send
    one per step, and the orchestrator then read its empty queue). A marker NOTIFY sent after the task settled
    arrives after any notification the run sent, so everything before it was the run's."""
    listener = await connect(db_url)
    try:
        results_channel = channel(STEP_RESULTS_QUEUE)
        await listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(results_channel)))
        async with running(db_url, ["linear_workflow"]):
            created = await create(registered, "linear_workflow", "mathematical_sequence", {"even_number": 6})
            assert (await wait_settled(registered, created.task_uuid))["state"] == "complete"
        await registered.execute("SELECT pg_notify(%s, 'marker')", [results_channel])
        payloads = [note.payload async for note in listener.notifies(timeout=30, stop_after=1)]
        while payloads[-1] != "marker":
            payloads += [note.payload async for note in listener.notifies(timeout=30, stop_after=1)]
    finally:
        await listener.close()
    assert payloads == ["marker"]
    assert await _results_sent(registered) == 0


async def test_with_the_fast_path_off_results_go_through_an_orchestrator(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["linear_workflow"], fast_path=False):
        created = await create(registered, "linear_workflow", "mathematical_sequence", {"even_number": 6})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    trail = await _trail(registered, created.task_uuid)
    assert all(step["completed_by"] != step["ran_by"] and step["completions"] == 1 for step in trail)
    assert await _results_sent(registered) == 4


async def test_failed_attempts_are_left_to_the_orchestrator(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["retry_mechanics"]):
        created = await create(registered, "retry_mechanics", "retry_mechanics_test", {})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    [step] = await _trail(registered, created.task_uuid)
    assert step["completed_by"] == step["ran_by"] and step["audits"] == 3  # the success, applied here
    assert await _results_sent(registered) == 2  # the two failures, whose retries the orchestrator schedules


async def _wait_for_state(conn: Connection, task_uuid: UUID, state: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        row = await (
            await conn.execute(
                """
                SELECT count(*) AS n FROM tasker.workflow_steps s
                JOIN tasker.workflow_step_transitions t ON t.workflow_step_uuid = s.workflow_step_uuid AND t.most_recent
                WHERE s.task_uuid = %s AND t.to_state = %s
                """,
                [task_uuid, state],
            )
        ).fetchone()
        if row and row["n"]:
            return
        assert time.monotonic() < deadline, f"no step of {task_uuid} reached {state}"
        await asyncio.sleep(0.02)


async def test_a_result_of_a_locked_task_goes_to_an_orchestrator(registered: Connection, db_url: str) -> None:
    created = await create(registered, "linear_workflow", "mathematical_sequence", {"even_number": 6})
    holder = await connect(db_url)
    try:
        async with running(db_url, ["linear_workflow"]):
            async with holder.transaction():
                await task_lock(holder, created.task_uuid)  # an operator or orchestrator holds the task
                # the worker stores the first result anyway (it never waits for the lock) and announces it
                await _wait_for_state(registered, created.task_uuid, "enqueued_for_orchestration")
            task = await wait_settled(registered, created.task_uuid)
    finally:
        await holder.close()
    assert task["state"] == "complete"
    trail = await _trail(registered, created.task_uuid)
    contended = [step for step in trail if step["completed_by"] != step["ran_by"]]
    assert len(contended) == 1 and not contended[0]["same_transaction"]
    assert all(step["completions"] == 1 and step["audits"] == 1 for step in trail)
    assert await _results_sent(registered) == 1


@pytest.mark.parametrize(
    ("target", "namespace", "name", "context"),
    [
        # a linear chain is moved on by the store itself, whose COMMIT goes out with it: the fault hits the
        # statement queued between the store and its COMMIT (the claim of the next step)
        ("step_claim_by_token_send", "linear_workflow", "mathematical_sequence", {"even_number": 6}),
        # a decision step's result is planned by the engine's code in the worker
        ("apply_stored", "conditional_approval", "approval_routing", {"amount": 10, "requester": "r"}),
    ],
)
async def test_a_local_apply_that_fails_is_rolled_back_and_handed_over(
    registered: Connection,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    namespace: str,
    name: str,
    context: dict[str, Any],
) -> None:
    """A fault injected once into the worker's apply: its transaction (result, audit row, completion, the steps
    it enqueued) rolls back whole, the result is stored again for an orchestrator, and every step still completes
    exactly once."""
    real = getattr(worker_process, target)
    failures: list[int] = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("injected failure while applying a result")
        return real(*args, **kwargs)

    monkeypatch.setattr(worker_process, target, failing_once)
    async with running(db_url, [namespace]):
        created = await create(registered, namespace, name, context)
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete" and failures == [1]
    trail = await _trail(registered, created.task_uuid)
    assert all(step["completions"] == 1 and step["audits"] == 1 for step in trail)
    assert sum(step["completed_by"] != step["ran_by"] for step in trail) == 1
    assert await _results_sent(registered) == 1


def _flown_again() -> float:
    """Result stores the one flight refused, so far in this process (the worker runs in it)."""
    return REGISTRY.get_sample_value("tasker_worker_result_stores_flown_again_total") or 0.0


async def _wait_for_step(conn: Connection, task_uuid: UUID, name: str, state: str) -> None:
    deadline = time.monotonic() + 30
    while next(s["state"] for s in await task_steps(conn, task_uuid) if s["name"] == name) != state:
        assert time.monotonic() < deadline, f"step {name} never reached {state}"
        await asyncio.sleep(0.02)


async def test_a_success_on_a_task_with_a_failed_step_is_stored_again_the_long_way(
    registered: Connection, db_url: str, tmp_path: Any
) -> None:
    """The store and its COMMIT go out in one flight only when the store moves everything it applies on. Here the
    task has a failed step when the other step's success arrives: the flight rolls back whole, and the worker
    stores the result again in a transaction in which the engine's code plans the task (blocked by the failure).
    The success is stored and completed exactly once, with one audit row."""
    release = tmp_path / "release"
    flown_again = _flown_again()
    async with running(db_url, ["runtime_checks"]):
        created = await create(registered, "runtime_checks", "success_after_a_failure", {"release_file": str(release)})
        await _wait_for_step(registered, created.task_uuid, "fails_at_once", "error")
        release.touch()
        await _wait_for_step(registered, created.task_uuid, "succeeds_when_released", "complete")
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    assert _flown_again() == flown_again + 1
    trail = {str(step["workflow_step_uuid"]): step for step in await _trail(registered, created.task_uuid)}
    assert sorted((step["completions"], step["audits"]) for step in trail.values()) == [(0, 1), (1, 1)]
