"""The acceptance workflows, with orchestrator and worker running in the test's event loop on a real database."""

from __future__ import annotations

import pytest

from tasker.store.db import Connection
from tests.e2e.runtime import create, register_fixture_templates, running, step_results, wait_settled


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def test_linear_workflow(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["linear_workflow"]):
        created = await create(registered, "linear_workflow", "mathematical_sequence", {"even_number": 6})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    assert await step_results(registered, created.task_uuid) == {
        "linear_step_1": {"result": 36, "operation": "square"},
        "linear_step_2": {"result": 46, "operation": "add"},
        "linear_step_3": {"result": 138, "operation": "multiply"},
        "linear_step_4": {"result": 69, "operation": "divide"},
    }


async def test_diamond_workflow(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["diamond_workflow"]):
        created = await create(registered, "diamond_workflow", "diamond_pattern", {"even_number": 6})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete" and task["completed_at"] is not None
    results = await step_results(registered, created.task_uuid)
    assert results["diamond_branch_b"]["result"] == 61
    assert results["diamond_branch_c"]["result"] == 72
    assert results["diamond_end"]["result"] == 66.5


async def test_tree_workflow(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["tree_workflow"]):
        created = await create(registered, "tree_workflow", "hierarchical_tree", {"even_number": 2})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    results = await step_results(registered, created.task_uuid)
    leaf = ((2**2) ** 2) ** 2  # root, branch, leaf
    assert results["tree_leaf_d"]["result"] == leaf
    assert results["tree_final_convergence"]["result"] == (leaf**4) ** 2


async def test_mixed_dag_workflow(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["mixed_dag_workflow"]):
        created = await create(registered, "mixed_dag_workflow", "complex_dag", {"even_number": 2})
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    r = {k: v["result"] for k, v in (await step_results(registered, created.task_uuid)).items()}
    init, left, right = 4, 16, 16
    assert (r["dag_init"], r["dag_process_left"], r["dag_process_right"]) == (init, left, right)
    assert r["dag_validate"] == (left * right) ** 2
    assert r["dag_finalize"] == (r["dag_validate"] * left**2 * right**2) ** 2


ORDER = {
    "customer": {"id": "c1", "email": "c1@example.com"},
    "items": [{"sku": "A", "quantity": 2, "price": 10.5}, {"sku": "B", "quantity": 1, "price": 4}],
    "payment": {"method": "card", "token": "tok"},
    "shipping": {"address": "1 Main St", "method": "ground"},
}


async def test_order_fulfillment_workflow(registered: Connection, db_url: str) -> None:
    async with running(db_url, ["order_fulfillment"]):
        created = await create(registered, "order_fulfillment", "business_workflow", ORDER)
        task = await wait_settled(registered, created.task_uuid)
    assert task["state"] == "complete"
    r = {k: v for k, v in (await step_results(registered, created.task_uuid)).items()}
    assert r["validate_order"]["total"] == 25.0
    assert r["process_payment"]["charged"] == 25.0
    assert r["ship_order"] == {"shipped": True, "payment_id": "pay_1", "to": "1 Main St"}
