"""Failure paths end to end: retries with the template's backoff, exhaustion, permanent failures, timeouts,
missing handlers."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from tasker.model.retry import MAX_RETRY_AFTER_SECONDS
from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tests.e2e.runtime import create, register_fixture_templates, running, wait_settled, wait_step_state


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def _only_step(conn: Connection, task_uuid: UUID) -> dict[str, Any]:
    steps = await task_steps(conn, task_uuid)
    assert len(steps) == 1
    return steps[0]


async def _starts(conn: Connection, step_uuid: UUID) -> list[datetime]:
    rows = await (
        await conn.execute(
            "SELECT created_at FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = %s"
            " AND to_state = 'in_progress' ORDER BY sort_key",
            [step_uuid],
        )
    ).fetchall()
    return [r["created_at"] for r in rows]


async def test_retry_then_success_waits_the_templates_backoff(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["retry_mechanics"]):
        created = await create(registered, "retry_mechanics", "retry_mechanics_test", {})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    step = await _only_step(registered, created.task_uuid)
    assert step["state"] == "complete" and step["attempts"] == 3
    assert step["results"]["result"] == {"succeeded_on_attempt": 3}
    starts = await _starts(registered, step["workflow_step_uuid"])
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    # exponential from 100 ms with ±10 % jitter: about 0.1 s, then about 0.2 s
    assert gaps[0] >= 0.09 and gaps[1] >= 0.18, gaps
    audit = await (
        await registered.execute(
            "SELECT success, execution_time_ms, worker_uuid FROM tasker.workflow_step_result_audit"
            " WHERE workflow_step_uuid = %s ORDER BY recorded_at",
            [step["workflow_step_uuid"]],
        )
    ).fetchall()
    assert [a["success"] for a in audit] == [False, False, True]
    assert all(a["execution_time_ms"] is not None and a["worker_uuid"] is not None for a in audit)


async def test_retry_exhaustion_blocks_the_task(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["retry_mechanics"]):
        created = await create(registered, "retry_mechanics", "retry_exhaustion_test", {})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    step = await _only_step(registered, created.task_uuid)
    assert step["state"] == "error" and step["attempts"] == 3
    assert step["results"]["error"]["message"] == "attempt 3 failed"
    entry = await (
        await registered.execute(
            "SELECT dlq_reason, original_state, metadata FROM tasker.tasks_dlq WHERE task_uuid = %s",
            [created.task_uuid],
        )
    ).fetchone()
    assert entry is not None and entry["dlq_reason"] == "max_retries_exceeded"
    assert entry["original_state"] == "blocked_by_failures"
    assert entry["metadata"]["exhausted_step_uuids"] == [str(step["workflow_step_uuid"])]


async def test_non_retryable_failure_is_not_retried(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["test_scenarios"]):
        created = await create(registered, "test_scenarios", "permanent_error_only", {})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    step = await _only_step(registered, created.task_uuid)
    assert step["state"] == "error" and step["attempts"] == 1
    assert step["results"]["error"]["error_type"] == "permanent_error"
    assert step["results"]["metadata"]["retryable"] is False
    entry = await (
        await registered.execute(
            "SELECT dlq_reason, original_state, resolution_status, metadata FROM tasker.tasks_dlq WHERE task_uuid = %s",
            [created.task_uuid],
        )
    ).fetchone()
    # blocked work shows in `dlq list` even when no retries were used up: a permanent failure is investigated too
    assert entry is not None, "a permanently failed step left its blocked task out of the DLQ"
    assert entry["dlq_reason"] == "manual_dlq" and entry["resolution_status"] == "pending"
    assert entry["original_state"] == "blocked_by_failures"
    assert entry["metadata"]["detection_method"] == "permanent_failure"
    assert entry["metadata"]["failed_step_uuids"] == [str(step["workflow_step_uuid"])]


async def test_a_huge_retry_after_is_clamped_and_the_step_waits(registered: Connection, db_url: str) -> None:
    """A handler asking to be retried in 10^300 seconds (or never) waits a day, instead of poisoning its result."""
    async with running(db_url, ["test_scenarios"]):
        created = await create(registered, "test_scenarios", "huge_retry_after", {})
        await wait_step_state(registered, created.task_uuid, "waiting_for_retry")
    step = await _only_step(registered, created.task_uuid)
    assert step["backoff_request_seconds"] == MAX_RETRY_AFTER_SECONDS
    assert step["results"]["error"]["retry_after_seconds"] == MAX_RETRY_AFTER_SECONDS
    left = await (await registered.execute("SELECT count(*) AS n FROM pgmq.q_orchestration_step_results")).fetchone()
    assert left is not None and left["n"] == 0, "the result message was not consumed"


async def test_handler_timeout_is_a_retryable_failure(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["runtime_checks"]):
        created = await create(registered, "runtime_checks", "handler_timeout", {"sleep_seconds": 5})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    step = await _only_step(registered, created.task_uuid)
    assert step["state"] == "error" and step["attempts"] == 2
    assert step["results"]["error"]["error_type"] == "timeout"


async def test_missing_handler_is_a_permanent_failure(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["runtime_checks"]):
        created = await create(registered, "runtime_checks", "missing_handler", {})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    step = await _only_step(registered, created.task_uuid)
    assert step["attempts"] == 1
    assert step["results"]["error"]["error_type"] == "handler_not_found"
    assert "tests.handlers.nowhere" in step["results"]["error"]["message"]
