"""Domain events end to end: an orchestrator and a worker run templates declaring events; the rows, conditions,
envelopes, delivery modes, exactly one event per stored result, and nothing from a stale claimer's store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tasker.model.events import DomainEvent
from tasker.model.ids import uuid7
from tasker.model.machines import StepEvent
from tasker.model.states import StepState
from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tasker.store.transitions import StepChange, step_transition
from tasker.worker.events import default_bus
from tests.e2e.runtime import create, running, wait_settled
from tests.events.support import NAMESPACE, register_event_templates, rows, until
from tests.worker.support import lines, only_step, worker_running
from tests.worker.test_claim_token import OTHER_TOKEN, _roll_back_claim


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_event_templates(conn)
    return conn


async def _events_of(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    return await rows(conn, "task_uuid = %s", [task_uuid])


async def test_a_workflow_publishes_its_declared_events_once_per_result(registered: Connection, db_url: str) -> None:
    fast: list[DomainEvent] = []
    unsubscribe = default_bus.subscribe(["order.*", "payment.*"], fast.append)  # the in-process worker's bus
    try:
        async with running(db_url, [NAMESPACE]):
            created = await create(registered, NAMESPACE, "event_publishing", {})
            task = await wait_settled(registered, created.task_uuid)
    finally:
        unsubscribe()
    assert task["state"] == "complete"
    steps = {s["name"]: s for s in await task_steps(registered, created.task_uuid)}
    found = await _events_of(registered, created.task_uuid)
    # durable and broadcast only; the misshapen payload (schema) and unmatched conditions are left out
    by_step = [(r["step_name"], r["name"], r["outcome"], r["payload"]["metadata"]["attempt"]) for r in found]
    assert by_step == [
        ("ev_validate_order", "order.validated", "success", 1),
        ("ev_validate_order", "order.checked", "success", 1),
        ("ev_charge_card", "payment.retrying", "retryable_failure", 1),
        ("ev_charge_card", "payment.attempted", "retryable_failure", 1),
        ("ev_charge_card", "payment.retrying", "retryable_failure", 2),
        ("ev_charge_card", "payment.attempted", "retryable_failure", 2),
        ("ev_charge_card", "payment.captured", "success", 3),
        ("ev_charge_card", "payment.attempted", "success", 3),
    ]
    assert {r["condition"] for r in found if r["name"] == "payment.attempted"} == {"always"}
    assert {r["delivery_mode"] for r in found} == {"durable", "broadcast"}
    validated = found[0]
    envelope = validated["payload"]
    assert envelope["event_id"] == str(validated["event_uuid"]) and envelope["event_name"] == "order.validated"
    assert envelope["payload"]["payload"] == {"ok": True, "attempt": 1}
    assert envelope["payload"]["execution_result"] == steps["ev_validate_order"]["results"]
    assert envelope["metadata"] | {"fired_at": None, "fired_by": None} == {
        "task_uuid": str(created.task_uuid),
        "step_uuid": str(steps["ev_validate_order"]["workflow_step_uuid"]),
        "step_name": "ev_validate_order",
        "namespace": NAMESPACE,
        "task_name": "event_publishing",
        "task_version": "1.0.0",
        "correlation_id": str(task["correlation_id"]),
        "attempt": 1,
        "fired_at": None,
        "fired_by": None,
    }
    retrying = [r["payload"]["payload"]["payload"] for r in found if r["name"] == "payment.retrying"]
    assert [p["message"] for p in retrying] == ["transient failure on attempt 1", "transient failure on attempt 2"]
    # fast and broadcast reach the worker's in-process subscribers once each, after their commit
    assert Counter(e.name for e in fast) == {"order.checked": 1, "order.noted": 1}
    assert next(e for e in fast if e.name == "order.checked").event_uuid == found[1]["event_uuid"]


async def test_a_permanent_failure_publishes_its_failure_events(registered: Connection, db_url: str) -> None:
    async with running(db_url, [NAMESPACE]):
        created = await create(registered, NAMESPACE, "event_failure", {})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    found = await _events_of(registered, created.task_uuid)
    assert [(r["name"], r["condition"], r["outcome"]) for r in found] == [
        ("refund.failed", "permanent_failure", "permanent_failure"),
        ("refund.any_failure", "failure", "permanent_failure"),
    ]
    error = found[0]["payload"]["payload"]["payload"]
    assert error["message"] == "the card was declined" and error["retryable"] is False


async def test_a_step_without_declarations_publishes_nothing(registered: Connection, db_url: str) -> None:
    async with running(db_url, [NAMESPACE]):
        created = await create(registered, NAMESPACE, "event_plain", {})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete" and await rows(registered) == []


async def test_a_stale_claimers_store_publishes_nothing(registered: Connection, db_url: str, tmp_path: Path) -> None:
    run_file, release = tmp_path / "runs", tmp_path / "release"
    context = {"run_file": str(run_file), "release_file": str(release)}
    async with worker_running(db_url, namespaces=[NAMESPACE], concurrency=1) as worker:
        created = await create(registered, NAMESPACE, "event_gated", context)

        async def started() -> bool:
            return len(lines(run_file)) == 1

        await until(started, what="the handler to start")
        step_uuid = (await only_step(registered, created.task_uuid))["workflow_step_uuid"]
        await _roll_back_claim(registered, step_uuid)  # a crash undid the claim; another claimer re-issues it
        await step_transition(
            registered,
            StepChange(step_uuid, StepState.ENQUEUED, [StepEvent.START],
                       {"worker_uuid": uuid7(), "claim_token": OTHER_TOKEN}, expected_attempts=0),
        )  # fmt: skip
        release.touch()

        async def first_worker_done() -> bool:
            return worker.steps_done == 1 and not worker.running

        await until(first_worker_done, what="the stale worker to finish its run")
    step = await only_step(registered, created.task_uuid)
    assert step["state"] == "in_progress" and step["results"] is None  # its store lost the fence
    assert await rows(registered) == []
