"""The Python client against a real server: every route, typed responses, typed errors, credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tasker import errors
from tasker.client import (
    AsyncTaskerClient,
    BadRequestError,
    ConflictError,
    DuplicateTaskError,
    ForbiddenError,
    InvalidContextError,
    NotFoundError,
    TaskerClient,
    UnauthorizedError,
)
from tasker.config import ApiKey
from tasker.model import wire
from tasker.model.requests import TaskRequest
from tests.api.server import register_templates, serving

GHOST = "01900000-0000-7000-8000-000000000000"


@pytest.fixture
def api_url(db_url: str) -> Iterator[str]:
    register_templates(db_url)
    with serving(db_url) as base:
        yield base


def linear(n: int) -> TaskRequest:
    return TaskRequest(namespace="linear_workflow", name="mathematical_sequence", context={"even_number": n})


def test_sync_client_covers_every_route(api_url: str) -> None:
    with TaskerClient(api_url) as client:
        task = client.create_task(linear(6))
        assert isinstance(task, wire.TaskResponse) and task.status == "steps_in_process" and len(task.steps) == 4
        assert client.get_task(task.task_uuid).task_uuid == task.task_uuid
        page = client.list_tasks(namespace="linear_workflow", per_page=10)
        assert page.pagination.total_count == 1 and page.tasks[0].task_uuid == task.task_uuid
        summary = client.task_summary(task.task_uuid)
        assert summary.template.name == "mathematical_sequence" and len(summary.edges) == 3
        steps = client.list_steps(task.task_uuid)
        assert [type(s) for s in steps] == [wire.StepResponse] * 4
        first = client.get_step(task.task_uuid, steps[0].step_uuid)
        assert first.name == "linear_step_1"
        done = client.complete_step(task.task_uuid, first.step_uuid, {"result": 36}, reason="by hand", by="ops")
        assert done.current_state == "complete"
        second = client.resolve_step(task.task_uuid, steps[1].step_uuid, reason="skip", by="ops")
        assert second.current_state == "resolved_manually"
        assert client.step_audit(task.task_uuid, first.step_uuid) == []
        templates = client.list_templates("linear_workflow")
        assert templates.total_count == 1
        assert client.get_template("linear_workflow", "mathematical_sequence").steps[0].name == "linear_step_1"
        assert client.validate_template(yaml="name: x\n").valid is False
        assert client.performance(hours=1).total_tasks == 1
        assert client.bottlenecks(limit=3, min_executions=1).resource_utilization.system_health.total_tasks == 1
        assert client.health().status == "healthy"
        assert client.health("ready").checks["web_database"].status == "healthy"
        assert client.health("live").status == "alive"
        assert "queue_depth" in client.health("detailed").info
        assert "tasker_tasks" in client.metrics()
        assert "/v1/tasks" in client.openapi()["paths"]
        cancelled = client.cancel_task(task.task_uuid)
        assert cancelled.status == "cancelled"


def test_errors_are_typed(api_url: str) -> None:
    with TaskerClient(api_url) as client:
        created = client.create_task(linear(2))
        with pytest.raises(DuplicateTaskError) as duplicate:
            client.create_task(linear(2))
        assert duplicate.value.existing_task_uuid == str(created.task_uuid)
        assert isinstance(duplicate.value, errors.DuplicateTaskError) and duplicate.value.status_code == 409
        with pytest.raises(InvalidContextError) as invalid:
            client.create_task({"namespace": "linear_workflow", "name": "mathematical_sequence", "context": {}})
        assert invalid.value.details["errors"][0]["field"] == "/even_number"
        with pytest.raises(NotFoundError):
            client.get_task(GHOST)
        with pytest.raises(errors.NotFoundError):
            client.get_template("linear_workflow", "nope", "1.0.0")
        with pytest.raises(BadRequestError, match="priority"):
            client.create_task({"namespace": "a", "name": "b", "priority": 500})
        with pytest.raises(ConflictError, match="only a step in 'error'"):
            client.reset_step(created.task_uuid, created.steps[0].step_uuid, reason="x", by="ops")
        client.cancel_task(created.task_uuid)
        with pytest.raises(ConflictError):
            client.cancel_task(created.task_uuid)


async def test_async_client(api_url: str) -> None:
    async with AsyncTaskerClient(api_url) as client:
        task = await client.create_task(linear(4))
        assert (await client.get_task(task.task_uuid)).status == "steps_in_process"
        assert len(await client.list_steps(task.task_uuid)) == 4
        assert (await client.list_tasks()).pagination.total_count == 1
        assert (await client.health()).status == "healthy"
        with pytest.raises(NotFoundError):
            await client.task_summary(GHOST)


def test_credentials_are_sent(db_url: str) -> None:
    register_templates(db_url)
    keys = [ApiKey(key="client-key", permissions=["tasks:*"])]
    with serving(db_url, auth_enabled=True, api_keys=keys) as base:
        with TaskerClient(base, api_key="client-key") as client:
            assert client.create_task(linear(8)).status == "steps_in_process"
            with pytest.raises(ForbiddenError, match="templates:read"):
                client.list_templates()
        with TaskerClient(base) as anonymous, pytest.raises(UnauthorizedError):
            anonymous.list_tasks()
        with TaskerClient(base, api_key="wrong") as wrong, pytest.raises(UnauthorizedError):
            wrong.list_tasks()


def test_clients_cover_the_dlq_routes(api_url: str, db_url: str) -> None:
    import asyncio

    from tests.api.test_dlq_routes import _stale_task

    task_uuid = _stale_task(db_url)
    with TaskerClient(api_url) as client:
        page = client.list_dlq(resolution_status="pending")
        assert page.total == 1 and str(page.entries[0].task_uuid) == task_uuid
        entry = page.entries[0]
        assert entry.dlq_reason == "staleness_timeout" and entry.task_snapshot
        assert [e.dlq_entry_uuid for e in client.dlq_for_task(task_uuid).entries] == [entry.dlq_entry_uuid]
        assert client.get_dlq_entry(entry.dlq_entry_uuid).original_state == "steps_in_process"
        assert client.dlq_stats()["by_reason"]
        assert client.dlq_investigation_queue()["entries"][0]["dlq_entry_uuid"] == str(entry.dlq_entry_uuid)
        assert "tasks" in client.dlq_staleness()
        with pytest.raises(BadRequestError, match="resolution status"):
            client.update_dlq_entry(entry.dlq_entry_uuid, wire.DlqEntryUpdate(resolution_status="solved"))
        with pytest.raises(NotFoundError):
            client.get_dlq_entry(GHOST)

    async def resolve() -> wire.DlqEntry:
        async with AsyncTaskerClient(api_url) as client:
            update = wire.DlqEntryUpdate(resolution_status="manually_resolved", resolved_by="ops@example.com")
            return await client.update_dlq_entry(entry.dlq_entry_uuid, update)

    resolved = asyncio.run(resolve())
    assert resolved.resolution_status == "manually_resolved" and resolved.resolved_by == "ops@example.com"
