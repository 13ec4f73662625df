"""Dynamic workflows end to end (orchestrator and worker in this event loop, real PostgreSQL): decision points,
batch fan-out with cursors, deferred convergence, failure strategies, checkpoints and duplicate outcomes."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tasker.engine import dynamic
from tasker.engine.operator import step_action
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.router import STEP_RESULTS_QUEUE
from tasker.store.db import Connection
from tasker.store.steps import step_checkpoint_save_claimed
from tasker.store.tasks import task_edges, task_steps
from tasker.store.template_cache import TemplateCache
from tests.e2e.runtime import create, register_fixture_templates, running, step_results, wait_settled

APPROVAL = ("conditional_approval", "approval_routing")
BRANCHES = {"auto_approve", "manager_approval", "finance_review"}


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def _steps(conn: Connection, task_uuid: UUID) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in await task_steps(conn, task_uuid)}


async def _edges(conn: Connection, task_uuid: UUID) -> set[tuple[str, str, str]]:
    names = {s["workflow_step_uuid"]: s["name"] for s in await task_steps(conn, task_uuid)}
    return {
        (names[e["from_step_uuid"]], names[e["to_step_uuid"]], e["name"]) for e in await task_edges(conn, task_uuid)
    }


async def _history(conn: Connection, step_uuid: UUID) -> list[str]:
    rows = await (
        await conn.execute(
            "SELECT to_state FROM tasker.workflow_step_transitions WHERE workflow_step_uuid = %s ORDER BY sort_key",
            [step_uuid],
        )
    ).fetchall()
    return [r["to_state"] for r in rows]


# --- decision points -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (0.01, {"auto_approve"}),
        (999.99, {"auto_approve"}),
        (1000, {"manager_approval"}),
        (4999.99, {"manager_approval"}),
        (5000, {"manager_approval", "finance_review"}),
        (20000, {"manager_approval", "finance_review"}),
    ],
)
async def test_conditional_approval_creates_exactly_the_expected_branches(
    registered: Connection, db_url: str, amount: float, expected: set[str]
) -> None:
    async with running(db_url, ["conditional_approval"]):
        created = await create(registered, *APPROVAL, {"amount": amount, "requester": "ann"})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    steps = await _steps(registered, created.task_uuid)
    assert set(steps) & BRANCHES == expected
    assert set(steps) == {"validate_request", "routing_decision", "finalize_approval"} | expected
    assert all(s["state"] == "complete" for s in steps.values())
    final = steps["finalize_approval"]
    assert final["attempts"] == 1 and (await _history(registered, final["workflow_step_uuid"])).count("complete") == 1
    audits = await (
        await registered.execute(
            "SELECT count(*) AS n FROM tasker.workflow_step_result_audit WHERE workflow_step_uuid = %s",
            [final["workflow_step_uuid"]],
        )
    ).fetchone()
    assert audits is not None and audits["n"] == 1
    # the convergence step ran after every branch that exists, and waits only for those
    assert all(final["last_attempted_at"] >= steps[b]["processed_at"] for b in expected)
    edges = await _edges(registered, created.task_uuid)
    assert {(b, "finalize_approval", "provides") for b in expected} <= edges
    assert {e for e in edges if e[1] == "finalize_approval"} == {(b, "finalize_approval", "provides") for b in expected}
    assert {(e[0], e[1]) for e in edges if e[1] in expected} == {("routing_decision", b) for b in expected}
    result = (await step_results(registered, created.task_uuid))["finalize_approval"]
    assert result["approved"] is True and set(result["approvals"]) == expected


@pytest.mark.parametrize(
    ("forced", "named"),
    [
        (["no_such_step"], "no_such_step"),
        (["validate_request"], "validate_request"),
        (["auto_approve", "bogus"], "bogus"),
    ],
)
async def test_invalid_decision_outcome_fails_the_decision_step_naming_the_step(
    registered: Connection, db_url: str, forced: list[str], named: str
) -> None:
    async with running(db_url, ["conditional_approval"]):
        created = await create(registered, *APPROVAL, {"amount": 10, "requester": "ann", "force_steps": forced})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    steps = await _steps(registered, created.task_uuid)
    decision = steps["routing_decision"]
    assert decision["state"] == "error"
    assert decision["results"]["success"] is False and decision["results"]["status"] == "permanent_error"
    message = decision["results"]["error"]["message"]
    assert repr(named) in message and "routing_decision" in message
    assert decision["state_metadata"]["error"] == message
    assert set(steps) == {"validate_request", "routing_decision"}  # nothing was created


async def test_nested_decisions_and_a_convergence_waiting_for_the_inner_decision(
    registered: Connection, db_url: str
) -> None:
    context = {"nd_outer": ["nd_branch_a", "nd_branch_b"], "nd_inner": ["nd_inner_x"]}
    async with running(db_url, ["dynamic_nested"]):
        created = await create(registered, "dynamic_nested", "nested_decisions", context)
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    steps = await _steps(registered, created.task_uuid)
    assert set(steps) == {
        "nd_start", "nd_outer", "nd_branch_a", "nd_branch_b", "nd_inner", "nd_inner_x", "nd_converge", "nd_after"
    }  # fmt: skip
    converge = (await step_results(registered, created.task_uuid))["nd_converge"]
    # it waited for the inner decision's branch, created after the convergence step itself
    assert "nd_inner_x" in converge["ancestors"] and "nd_branch_b" in converge["ancestors"]
    assert steps["nd_converge"]["last_attempted_at"] >= steps["nd_inner_x"]["processed_at"]
    assert steps["nd_after"]["last_attempted_at"] >= steps["nd_converge"]["processed_at"]


async def test_nested_decision_outside_its_segment_is_refused(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["dynamic_nested"]):
        created = await create(registered, "dynamic_nested", "nested_decisions", {"nd_outer": ["nd_inner_x"]})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    outer = (await _steps(registered, created.task_uuid))["nd_outer"]
    assert outer["state"] == "error" and "'nd_inner_x'" in outer["results"]["error"]["message"]
    assert "outside its segment" in outer["results"]["error"]["message"]


async def test_decision_with_no_branches_completes_the_task(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["dynamic_nested"]):
        created = await create(registered, "dynamic_nested", "nested_decisions", {"nd_outer": []})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    assert set(await _steps(registered, created.task_uuid)) == {"nd_start", "nd_outer"}


# --- batches -------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, rows: int) -> tuple[int, float]:
    quantity, value = 0, 0.0
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "quantity", "price"])
        for i in range(rows):
            q, p = i % 7 + 1, (i % 13) + 0.25
            writer.writerow([i + 1, f"product {i + 1}", q, p])
            quantity += q
            value += q * p
    return quantity, round(value, 2)


async def test_csv_batch_1000_rows_in_batches_of_200(registered: Connection, db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "products.csv"
    quantity, value = _write_csv(path, 1000)
    async with running(db_url, ["csv_processing"]):
        created = await create(
            registered, "csv_processing", "csv_product_inventory_analyzer", {"csv_file_path": str(path)}
        )
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    steps = await _steps(registered, created.task_uuid)
    workers = sorted(n for n in steps if n.startswith("process_csv_batch_"))
    assert workers == [f"process_csv_batch_{i:03d}" for i in range(1, 6)]
    first = steps["process_csv_batch_003"]["inputs"]
    assert first["cursor"] == {"batch_id": "003", "start_cursor": 400, "end_cursor": 600, "batch_size": 200}
    assert first["batch_metadata"] == {"cursor_field": "row_number", "failure_strategy": "continue_on_failure"}
    assert first["is_no_op"] is False and first["__template_step_name"] == "process_csv_batch"
    results = await step_results(registered, created.task_uuid)
    assert [results[w]["first_id"] for w in workers] == ["1", "201", "401", "601", "801"]
    aggregate = results["aggregate_csv_results"]
    assert aggregate["worker_count"] == 5 and aggregate["total_rows"] == 1000
    assert aggregate["total_quantity"] == quantity and aggregate["inventory_value"] == pytest.approx(value)
    edges = await _edges(registered, created.task_uuid)
    assert {("analyze_csv", w, "batch_dependency") for w in workers} <= edges
    assert {(w, "aggregate_csv_results", "worker_to_convergence") for w in workers} <= edges
    assert len(edges) == 10


async def test_csv_batch_empty_file_makes_one_no_op_worker(registered: Connection, db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    _write_csv(path, 0)
    async with running(db_url, ["csv_processing"]):
        created = await create(
            registered, "csv_processing", "csv_product_inventory_analyzer", {"csv_file_path": str(path)}
        )
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    steps = await _steps(registered, created.task_uuid)
    assert set(steps) == {"analyze_csv", "process_csv_batch_000", "aggregate_csv_results"}
    assert steps["process_csv_batch_000"]["inputs"]["is_no_op"] is True
    aggregate = (await step_results(registered, created.task_uuid))["aggregate_csv_results"]
    assert aggregate["worker_count"] == 0 and aggregate["no_op"] is True and aggregate["total_rows"] == 0


@pytest.mark.parametrize(
    ("numbers", "parity", "workers", "total"), [(range(1, 10), "odd", 3, 25), (range(1, 9), "even", 2, 20)]
)
async def test_diamond_then_decision_then_batch(
    registered: Connection, db_url: str, numbers: range, parity: str, workers: int, total: int
) -> None:
    async with running(db_url, ["combined_workflow"]):
        created = await create(
            registered, "combined_workflow", "diamond_decision_batch_processor", {"numbers": list(numbers)}
        )
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    steps = await _steps(registered, created.task_uuid)
    other = "even" if parity == "odd" else "odd"
    assert f"ddb_{parity}_batch_analyzer" in steps and f"ddb_{other}_batch_analyzer" not in steps
    assert not any(n.startswith(f"ddb_{other}") for n in steps)
    assert sorted(n for n in steps if n.startswith(f"ddb_{parity}_batch_worker_")) == [
        f"ddb_{parity}_batch_worker_{i:03d}" for i in range(1, workers + 1)
    ]
    results = await step_results(registered, created.task_uuid)
    assert results[f"ddb_{parity}_aggregate"] == {
        "workers": workers,
        "items": len(numbers) // 2 + (parity == "odd"),
        "sum": total,
    }
    assert results["ddb_finalize"] == {"aggregates": [f"ddb_{parity}_aggregate"], "sum": total}
    assert all(s["state"] == "complete" for s in steps.values())


# --- failure strategies ----------------------------------------------------------------------------------------------


async def test_continue_on_failure_lets_the_convergence_run(registered: Connection, db_url: str) -> None:
    context = {"total_items": 40, "batch_size": 10, "fail_batches": ["002"]}
    async with running(db_url, ["dynamic_strategies"]):
        created = await create(registered, "dynamic_strategies", "batch_continue_on_failure", context)
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    steps = await _steps(registered, created.task_uuid)
    failed = steps["continue_on_failure_worker_002"]
    assert failed["state"] == "resolved_manually" and failed["results"]["success"] is False
    assert await _history(registered, failed["workflow_step_uuid"]) == [
        "pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration", "error", "resolved_manually"
    ]  # fmt: skip
    collected = (await step_results(registered, created.task_uuid))["continue_on_failure_collect"]
    assert collected == {"workers": 4, "items": 30, "failed_workers": ["continue_on_failure_worker_002"]}


async def test_fail_fast_blocks_the_task(registered: Connection, db_url: str) -> None:
    context = {"total_items": 40, "batch_size": 10, "fail_batches": ["002"]}
    async with running(db_url, ["dynamic_strategies"]):
        created = await create(registered, "dynamic_strategies", "batch_fail_fast", context)
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    steps = await _steps(registered, created.task_uuid)
    assert steps["fail_fast_worker_002"]["state"] == "error"
    assert steps["fail_fast_collect"]["state"] == "pending"


async def test_isolate_lets_the_other_workers_finish_and_waits_for_an_operator(
    registered: Connection, db_url: str
) -> None:
    context = {"total_items": 60, "batch_size": 10, "fail_batches": ["001"]}
    async with running(db_url, ["dynamic_strategies"], concurrency=1):
        created = await create(registered, "dynamic_strategies", "batch_isolate", context)
        task = await wait_settled(registered, created.task_uuid)
        assert task["state"] == "blocked_by_failures"
        steps = await _steps(registered, created.task_uuid)
        assert steps["isolate_worker_001"]["state"] == "error"
        assert all(steps[f"isolate_worker_{i:03d}"]["state"] == "complete" for i in range(2, 7))
        assert steps["isolate_collect"]["state"] == "pending"
        await step_action(
            registered,
            PgmqTransport(),
            task_uuid=created.task_uuid,
            step_uuid=steps["isolate_worker_001"]["workflow_step_uuid"],
            action="resolve_manually",
            actor="test",
        )
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    collected = (await step_results(registered, created.task_uuid))["isolate_collect"]
    assert collected["workers"] == 6 and collected["items"] == 50


# --- idempotency -----------------------------------------------------------------------------------------------------


async def _counts(conn: Connection, task_uuid: UUID) -> tuple[int, int, int]:
    row = await (
        await conn.execute(
            """SELECT (SELECT count(*) FROM tasker.workflow_steps WHERE task_uuid = %(t)s) AS steps,
                      (SELECT count(*) FROM tasker.workflow_step_edges e JOIN tasker.workflow_steps s
                         ON s.workflow_step_uuid = e.to_step_uuid WHERE s.task_uuid = %(t)s) AS edges,
                      (SELECT count(*) FROM tasker.workflow_step_transitions t JOIN tasker.workflow_steps s
                         USING (workflow_step_uuid) WHERE s.task_uuid = %(t)s) AS transitions""",
            {"t": task_uuid},
        )
    ).fetchone()
    assert row is not None
    return row["steps"], row["edges"], row["transitions"]


async def _resend_result(conn: Connection, task_uuid: UUID, step_uuid: UUID, correlation_id: UUID) -> None:
    body = {"task_uuid": str(task_uuid), "step_uuid": str(step_uuid), "correlation_id": str(correlation_id)}
    await conn.execute("SELECT pgmq.send(%s, %s::jsonb)", [STEP_RESULTS_QUEUE, json.dumps(body)])


@pytest.mark.parametrize("which", ["decision", "batch"])
async def test_duplicate_outcome_creates_nothing_new(
    registered: Connection, db_url: str, tmp_path: Path, which: str
) -> None:
    if which == "decision":
        namespace, name, context, source = *APPROVAL, {"amount": 6000, "requester": "bo"}, "routing_decision"
    else:
        path = tmp_path / "p.csv"
        _write_csv(path, 450)
        namespace, name, context = "csv_processing", "csv_product_inventory_analyzer", {"csv_file_path": str(path)}
        source = "analyze_csv"
    async with running(db_url, [namespace]):
        created = await create(registered, namespace, name, context)
        task = await wait_settled(registered, created.task_uuid)
        assert task["state"] == "complete"
        before = await _counts(registered, created.task_uuid)
        step = (await _steps(registered, created.task_uuid))[source]
        # the same result message again, through the orchestrator
        await _resend_result(registered, created.task_uuid, step["workflow_step_uuid"], created.correlation_id)
        await _resend_result(registered, created.task_uuid, step["workflow_step_uuid"], created.correlation_id)
        for _ in range(100):
            row = await (await registered.execute(f"SELECT count(*) AS n FROM pgmq.q_{STEP_RESULTS_QUEUE}")).fetchone()
            if row is not None and row["n"] == 0:
                break
            await asyncio.sleep(0.05)
        assert row is not None and row["n"] == 0
    assert await _counts(registered, created.task_uuid) == before
    # and the hook itself, applied twice more in one transaction
    outcome = await (
        await registered.execute(
            """SELECT s.workflow_step_uuid, s.task_uuid, n.name, n.name AS template_step_name, s.results,
                      t.named_task_uuid
               FROM tasker.workflow_steps s JOIN tasker.named_steps n USING (named_step_uuid)
               JOIN tasker.tasks t USING (task_uuid) WHERE s.workflow_step_uuid = %s""",
            [step["workflow_step_uuid"]],
        )
    ).fetchone()
    assert outcome is not None
    template = await TemplateCache("test").get(registered, outcome["named_task_uuid"])
    async with registered.transaction():
        first = await dynamic.after_step_completed(registered, outcome, template)
        second = await dynamic.after_step_completed(registered, outcome, template)
    assert (first.steps, first.edges, second.steps, second.edges) == (0, 0, 0, 0)
    assert await _counts(registered, created.task_uuid) == before
    if which == "batch":
        assert before[0] == 1 + 3 + 1  # analyzer, 3 workers (200, 200, 50), aggregate


# --- checkpoints -----------------------------------------------------------------------------------------------------


async def test_checkpoint_resume_after_a_failure(registered: Connection, db_url: str) -> None:
    context = {"total_items": 100, "items_per_checkpoint": 25, "fail_at": 60, "mode": "fail"}
    async with running(db_url, ["dynamic_checkpoint"]):
        created = await create(registered, "dynamic_checkpoint", "checkpoint_resume", context)
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    worker = (await _steps(registered, created.task_uuid))["checkpoint_batch_001"]
    result = worker["results"]["result"]
    assert (result["attempt"], result["resumed_from"]) == (2, 50)
    assert result["items_processed"] == 100 and result["sum"] == sum(range(100)) and result["distinct_items"] == 100
    history = worker["checkpoint"]["history"]
    assert [(h["cursor"], h["attempt"]) for h in history] == [(25, 1), (50, 1), (75, 2), (100, 2)]
    assert worker["checkpoint"]["cursor"] == 100 and worker["checkpoint"]["items_processed"] == 100
    states = await _history(registered, worker["workflow_step_uuid"])
    assert states.count("in_progress") == 2 and states.count("waiting_for_retry") == 1  # no transition per checkpoint
    summary = (await step_results(registered, created.task_uuid))["summarize_items"]
    assert summary == {"items_processed": 100, "workers": 1}


async def test_checkpoint_yield_from_an_async_handler(registered: Connection, db_url: str) -> None:
    context = {"total_items": 100, "items_per_checkpoint": 25, "fail_at": 60}
    async with running(db_url, ["dynamic_checkpoint"]):
        created = await create(registered, "dynamic_checkpoint", "checkpoint_async", context)
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    worker = (await _steps(registered, created.task_uuid))["checkpoint_async_batch_001"]
    assert worker["results"]["result"]["resumed_from"] == 50 and worker["results"]["result"]["sum"] == 4950
    assert [h["cursor"] for h in worker["checkpoint"]["history"]] == [25, 50, 75, 100]


async def test_checkpoint_of_a_step_no_longer_held_is_refused(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["dynamic_checkpoint"]):
        created = await create(registered, "dynamic_checkpoint", "checkpoint_resume", {"total_items": 10})
        await wait_settled(registered, created.task_uuid)
    worker = (await _steps(registered, created.task_uuid))["checkpoint_batch_001"]
    claim = await (
        await registered.execute(
            "SELECT metadata ->> 'claim_token' AS token FROM tasker.workflow_step_transitions"
            " WHERE workflow_step_uuid = %s AND to_state = 'in_progress' ORDER BY sort_key DESC LIMIT 1",
            [worker["workflow_step_uuid"]],
        )
    ).fetchone()
    assert claim is not None and claim["token"]  # the claim that held the step, which has completed since
    stored = await step_checkpoint_save_claimed(
        registered, worker["workflow_step_uuid"], worker["attempts"], claim["token"], {"cursor": 1}
    )
    assert stored is None
