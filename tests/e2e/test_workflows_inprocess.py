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
