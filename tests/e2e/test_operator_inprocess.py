"""Operator actions on a blocked task resume it; cancellation stops it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tasker.engine.operator import cancel_task, step_action
from tasker.errors import InvalidTransitionError
from tasker.messaging.pgmq import PgmqTransport
from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tests.e2e.runtime import create, register_fixture_templates, running, wait_settled


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def _steps(conn: Connection, task_uuid: UUID) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in await task_steps(conn, task_uuid)}


@pytest.mark.parametrize("action", ["reset_for_retry", "resolve_manually", "complete_manually"])
async def test_step_action_resumes_a_blocked_task(
    registered: Connection, db_url: str, tmp_path: Path, action: str
) -> None:
    fixed = tmp_path / "fixed"
    async with running(db_url, ["runtime_checks"]):
        created = await create(registered, "runtime_checks", "fragile_chain", {"fixed_file": str(fixed)})
        blocked = await wait_settled(registered, created.task_uuid)
        assert blocked["state"] == "blocked_by_failures"
        before = await _steps(registered, created.task_uuid)
        assert before["fragile_step"]["state"] == "error"
        assert before["fragile_dependent"]["state"] == "pending"
        fixed.write_text("yes")
        outcome = await step_action(
            registered,
            PgmqTransport(),
            task_uuid=created.task_uuid,
            step_uuid=before["fragile_step"]["workflow_step_uuid"],
            action=action,  # type: ignore[arg-type]
            actor="ops@example.com",
            reason="account unlocked",
            results={"supplied": 42},
        )
        assert outcome.task_state == "steps_in_process" or outcome.task_state == "complete"
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    after = await _steps(registered, created.task_uuid)
    assert after["fragile_setup"]["results"] == before["fragile_setup"]["results"], "earlier results are untouched"
    reported = after["fragile_dependent"]["results"]["result"]["parent_result"]
    expected = {"reset_for_retry": {"fixed": True}, "resolve_manually": None, "complete_manually": {"supplied": 42}}
    assert reported == expected[action]


async def test_reset_is_refused_for_a_step_that_has_not_failed(registered: Connection, db_url: str) -> None:
    created = await create(registered, "runtime_checks", "fragile_chain", {"fixed_file": "/nonexistent"})
    steps = await _steps(registered, created.task_uuid)
    with pytest.raises(InvalidTransitionError, match="only a step in 'error'"):
        await step_action(
            registered,
            PgmqTransport(),
            task_uuid=created.task_uuid,
            step_uuid=steps["fragile_setup"]["workflow_step_uuid"],
            action="reset_for_retry",
            actor="ops",
        )


async def test_cancel_cancels_open_steps_and_refuses_twice(registered: Connection) -> None:
    created = await create(registered, "runtime_checks", "fragile_chain", {"fixed_file": "/nonexistent"})
    assert await cancel_task(registered, task_uuid=created.task_uuid, actor="ops") == "cancelled"
    states = {name: s["state"] for name, s in (await _steps(registered, created.task_uuid)).items()}
    assert set(states.values()) == {"cancelled"}
    with pytest.raises(InvalidTransitionError, match="already ended"):
        await cancel_task(registered, task_uuid=created.task_uuid, actor="ops")


async def test_retry_failed_resets_every_failed_step_and_the_task_completes(
    registered: Connection, db_url: str, tmp_path: Path
) -> None:
    from tasker.engine.operator import retry_failed_steps

    fixed = tmp_path / "fixed"
    async with running(db_url, ["runtime_checks"]):
        created = await create(registered, "runtime_checks", "fragile_chain", {"fixed_file": str(fixed)})
        assert (await wait_settled(registered, created.task_uuid))["state"] == "blocked_by_failures"
        fixed.write_text("yes")
        reset = await retry_failed_steps(registered, PgmqTransport(), task_uuid=created.task_uuid, actor="ops")
        assert len(reset) == 1
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    with pytest.raises(InvalidTransitionError, match="no failed steps"):
        await retry_failed_steps(registered, PgmqTransport(), task_uuid=created.task_uuid, actor="ops")


async def test_acting_on_an_exhausted_step_resolves_its_dlq_entry_with_who_did_what(
    registered: Connection, db_url: str, tmp_path: Path
) -> None:
    from tasker.store.dlq import dlq_entries_for_task

    async with running(db_url, ["retry_mechanics"]):
        created = await create(registered, "retry_mechanics", "retry_exhaustion_test", {})
        assert (await wait_settled(registered, created.task_uuid))["state"] == "blocked_by_failures"
        [entry] = await dlq_entries_for_task(registered, created.task_uuid)
        assert entry["dlq_reason"] == "max_retries_exceeded" and entry["resolution_status"] == "pending"
        step = (await _steps(registered, created.task_uuid))["always_fail"]
        await step_action(
            registered,
            PgmqTransport(),
            task_uuid=created.task_uuid,
            step_uuid=step["workflow_step_uuid"],
            action="resolve_manually",
            actor="ops@example.com",
            reason="vendor outage, handled by hand",
        )
        assert (await wait_settled(registered, created.task_uuid))["state"] == "complete"
    [entry] = await dlq_entries_for_task(registered, created.task_uuid)
    assert entry["resolution_status"] == "manually_resolved" and entry["resolved_by"] == "ops@example.com"
    assert "resolve_manually" in entry["resolution_notes"] and "vendor outage" in entry["resolution_notes"]
    assert entry["metadata"]["operator_action"]["actor"] == "ops@example.com"
