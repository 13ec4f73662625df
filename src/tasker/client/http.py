"""Python client of the Tasker REST API: ``TaskerClient`` (sync) and ``AsyncTaskerClient``, both on httpx.

Responses are the pydantic models of :mod:`tasker.model.wire`; error answers raise the typed exceptions of
:mod:`tasker.client.errors`. Credentials: ``api_key`` (sent as ``X-API-Key``) or ``token`` (a bearer JWT).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from uuid import UUID

import httpx

from tasker.client import calls
from tasker.client.errors import raise_for
from tasker.model import wire
from tasker.model.requests import TaskRequest


def _headers(api_key: str | None, token: str | None, api_key_header: str) -> dict[str, str]:
    headers = {"accept": "application/json"}
    if api_key:
        headers[api_key_header] = api_key
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


class TaskerClient:
    """Synchronous client; use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        api_key_header: str = "X-API-Key",
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=_headers(api_key, token, api_key_header),
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TaskerClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _send(self, call: calls.Call) -> Any:
        response = self._http.request(call.method, call.path, params=call.params, json=call.body)
        raise_for(response)
        return calls.parse(call, response.text)

    def create_task(self, request: TaskRequest | dict[str, Any]) -> wire.TaskResponse:
        """Create a task; returns it with its first steps enqueued."""
        result: wire.TaskResponse = self._send(calls.create_task(request))
        return result

    def list_tasks(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        status: str | None = None,
        initiator: str | None = None,
        source_system: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> wire.TaskListResponse:
        """One page of tasks, newest first."""
        result: wire.TaskListResponse = self._send(
            calls.list_tasks(
                namespace=namespace,
                name=name,
                status=status,
                initiator=initiator,
                source_system=source_system,
                page=page,
                per_page=per_page,
            )
        )
        return result

    def get_task(self, task_uuid: UUID | str) -> wire.TaskResponse:
        """A task with its steps."""
        result: wire.TaskResponse = self._send(calls.get_task(task_uuid))
        return result

    def cancel_task(self, task_uuid: UUID | str) -> wire.TaskResponse:
        """Cancel a task that has not ended."""
        result: wire.TaskResponse = self._send(calls.cancel_task(task_uuid))
        return result

    def task_summary(self, task_uuid: UUID | str) -> wire.TaskSummaryResponse:
        """A task with its template, steps, DAG edges and DLQ status."""
        result: wire.TaskSummaryResponse = self._send(calls.task_summary(task_uuid))
        return result

    def list_steps(self, task_uuid: UUID | str) -> list[wire.StepResponse]:
        """The steps of a task."""
        result: list[wire.StepResponse] = self._send(calls.list_steps(task_uuid))
        return result

    def get_step(self, task_uuid: UUID | str, step_uuid: UUID | str) -> wire.StepResponse:
        """One step of a task."""
        result: wire.StepResponse = self._send(calls.get_step(task_uuid, step_uuid))
        return result

    def step_action(
        self, task_uuid: UUID | str, step_uuid: UUID | str, action: wire.StepActionRequest
    ) -> wire.StepResponse:
        """Apply an operator action to a step (the task resumes)."""
        result: wire.StepResponse = self._send(calls.step_action(task_uuid, step_uuid, action))
        return result

    def retry_failed(self, task_uuid: UUID | str) -> wire.TaskResponse:
        """Reset every failed step of the task for retry; the task resumes."""
        result: wire.TaskResponse = self._send(calls.retry_failed(task_uuid))
        return result

    def step_audit(self, task_uuid: UUID | str, step_uuid: UUID | str) -> list[wire.StepAuditResponse]:
        """The result audit trail of a step, newest first."""
        result: list[wire.StepAuditResponse] = self._send(calls.step_audit(task_uuid, step_uuid))
        return result

    def list_templates(self, namespace: str | None = None) -> wire.TemplateListResponse:
        """Registered templates."""
        result: wire.TemplateListResponse = self._send(calls.list_templates(namespace))
        return result

    def get_template(self, namespace: str, name: str, version: str = "1.0.0") -> wire.TemplateDetail:
        """One registered template."""
        result: wire.TemplateDetail = self._send(calls.get_template(namespace, name, version))
        return result

    def validate_template(
        self, *, yaml: str | None = None, template: dict[str, Any] | None = None
    ) -> wire.TemplateValidateResponse:
        """Check a template without registering it."""
        result: wire.TemplateValidateResponse = self._send(calls.validate_template(yaml=yaml, template=template))
        return result

    def performance(self, hours: int = 24) -> wire.AnalyticsPerformance:
        """Throughput and durations over the last hours."""
        result: wire.AnalyticsPerformance = self._send(calls.performance(hours))
        return result

    def bottlenecks(self, limit: int = 10, min_executions: int = 5) -> wire.BottleneckAnalysis:
        """The slowest steps and tasks."""
        result: wire.BottleneckAnalysis = self._send(calls.bottlenecks(limit, min_executions))
        return result

    def health(self, which: str = "") -> wire.HealthResponse:
        """`/health`, or `/health/live|ready|detailed` with which=live|ready|detailed."""
        result: wire.HealthResponse = self._send(calls.health(which))
        return result

    def metrics(self) -> str:
        """Prometheus text."""
        result: str = self._send(calls.metrics())
        return result

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document."""
        result: dict[str, Any] = self._send(calls.openapi())
        return result

    def reset_step(
        self, task_uuid: UUID | str, step_uuid: UUID | str, *, reason: str | None = None, by: str | None = None
    ) -> wire.StepResponse:
        """Reset a failed step so it runs again."""
        action = wire.StepActionRequest(action_type="reset_for_retry", reason=reason, reset_by=by)
        return self.step_action(task_uuid, step_uuid, action)

    def resolve_step(
        self, task_uuid: UUID | str, step_uuid: UUID | str, *, reason: str | None = None, by: str | None = None
    ) -> wire.StepResponse:
        """Mark a step resolved by hand; its dependents run with no result from it."""
        action = wire.StepActionRequest(action_type="resolve_manually", reason=reason, resolved_by=by)
        return self.step_action(task_uuid, step_uuid, action)

    def complete_step(
        self,
        task_uuid: UUID | str,
        step_uuid: UUID | str,
        result: Any,
        *,
        reason: str | None = None,
        by: str | None = None,
    ) -> wire.StepResponse:
        """Complete a step by hand with the given result; its dependents see that result."""
        action = wire.StepActionRequest(
            action_type="complete_manually", completion_data={"result": result}, reason=reason, completed_by=by
        )
        return self.step_action(task_uuid, step_uuid, action)

    def list_dlq(
        self, *, resolution_status: str | None = None, dlq_reason: str | None = None, limit: int = 50, offset: int = 0
    ) -> wire.DlqListResponse:
        """Dead-letter queue entries, newest first."""
        result: wire.DlqListResponse = self._send(
            calls.list_dlq(resolution_status=resolution_status, dlq_reason=dlq_reason, limit=limit, offset=offset)
        )
        return result

    def dlq_for_task(self, task_uuid: UUID | str) -> wire.DlqTaskEntries:
        """Every DLQ entry of a task."""
        result: wire.DlqTaskEntries = self._send(calls.dlq_for_task(task_uuid))
        return result

    def get_dlq_entry(self, entry_uuid: UUID | str) -> wire.DlqEntry:
        result: wire.DlqEntry = self._send(calls.get_dlq_entry(entry_uuid))
        return result

    def update_dlq_entry(self, entry_uuid: UUID | str, update: wire.DlqEntryUpdate) -> wire.DlqEntry:
        """Record an investigation's outcome."""
        result: wire.DlqEntry = self._send(calls.update_dlq_entry(entry_uuid, update))
        return result

    def dlq_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._send(calls.dlq_stats())
        return result

    def dlq_investigation_queue(self, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = self._send(calls.dlq_investigation_queue(limit))
        return result

    def dlq_staleness(self, health_status: str | None = None, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = self._send(calls.dlq_staleness(health_status, limit))
        return result


class AsyncTaskerClient:
    """Asynchronous client; use as an async context manager or await :meth:`aclose`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        api_key_header: str = "X-API-Key",
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=_headers(api_key, token, api_key_header),
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTaskerClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, call: calls.Call) -> Any:
        response = await self._http.request(call.method, call.path, params=call.params, json=call.body)
        raise_for(response)
        return calls.parse(call, response.text)

    async def create_task(self, request: TaskRequest | dict[str, Any]) -> wire.TaskResponse:
        """Create a task; returns it with its first steps enqueued."""
        result: wire.TaskResponse = await self._send(calls.create_task(request))
        return result

    async def list_tasks(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        status: str | None = None,
        initiator: str | None = None,
        source_system: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> wire.TaskListResponse:
        """One page of tasks, newest first."""
        result: wire.TaskListResponse = await self._send(
            calls.list_tasks(
                namespace=namespace,
                name=name,
                status=status,
                initiator=initiator,
                source_system=source_system,
                page=page,
                per_page=per_page,
            )
        )
        return result

    async def get_task(self, task_uuid: UUID | str) -> wire.TaskResponse:
        """A task with its steps."""
        result: wire.TaskResponse = await self._send(calls.get_task(task_uuid))
        return result

    async def cancel_task(self, task_uuid: UUID | str) -> wire.TaskResponse:
        """Cancel a task that has not ended."""
        result: wire.TaskResponse = await self._send(calls.cancel_task(task_uuid))
        return result

    async def task_summary(self, task_uuid: UUID | str) -> wire.TaskSummaryResponse:
        """A task with its template, steps, DAG edges and DLQ status."""
        result: wire.TaskSummaryResponse = await self._send(calls.task_summary(task_uuid))
        return result

    async def list_steps(self, task_uuid: UUID | str) -> list[wire.StepResponse]:
        """The steps of a task."""
        result: list[wire.StepResponse] = await self._send(calls.list_steps(task_uuid))
        return result

    async def get_step(self, task_uuid: UUID | str, step_uuid: UUID | str) -> wire.StepResponse:
        """One step of a task."""
        result: wire.StepResponse = await self._send(calls.get_step(task_uuid, step_uuid))
        return result

    async def step_action(
        self, task_uuid: UUID | str, step_uuid: UUID | str, action: wire.StepActionRequest
    ) -> wire.StepResponse:
        """Apply an operator action to a step (the task resumes)."""
        result: wire.StepResponse = await self._send(calls.step_action(task_uuid, step_uuid, action))
        return result

    async def retry_failed(self, task_uuid: UUID | str) -> wire.TaskResponse:
        """Reset every failed step of the task for retry; the task resumes."""
        result: wire.TaskResponse = await self._send(calls.retry_failed(task_uuid))
        return result

    async def step_audit(self, task_uuid: UUID | str, step_uuid: UUID | str) -> list[wire.StepAuditResponse]:
        """The result audit trail of a step, newest first."""
        result: list[wire.StepAuditResponse] = await self._send(calls.step_audit(task_uuid, step_uuid))
        return result

    async def list_templates(self, namespace: str | None = None) -> wire.TemplateListResponse:
        """Registered templates."""
        result: wire.TemplateListResponse = await self._send(calls.list_templates(namespace))
        return result

    async def get_template(self, namespace: str, name: str, version: str = "1.0.0") -> wire.TemplateDetail:
        """One registered template."""
        result: wire.TemplateDetail = await self._send(calls.get_template(namespace, name, version))
        return result

    async def validate_template(
        self, *, yaml: str | None = None, template: dict[str, Any] | None = None
    ) -> wire.TemplateValidateResponse:
        """Check a template without registering it."""
        result: wire.TemplateValidateResponse = await self._send(calls.validate_template(yaml=yaml, template=template))
        return result

    async def performance(self, hours: int = 24) -> wire.AnalyticsPerformance:
        """Throughput and durations over the last hours."""
        result: wire.AnalyticsPerformance = await self._send(calls.performance(hours))
        return result

    async def bottlenecks(self, limit: int = 10, min_executions: int = 5) -> wire.BottleneckAnalysis:
        """The slowest steps and tasks."""
        result: wire.BottleneckAnalysis = await self._send(calls.bottlenecks(limit, min_executions))
        return result

    async def health(self, which: str = "") -> wire.HealthResponse:
        """`/health`, or `/health/live|ready|detailed` with which=live|ready|detailed."""
        result: wire.HealthResponse = await self._send(calls.health(which))
        return result

    async def metrics(self) -> str:
        """Prometheus text."""
        result: str = await self._send(calls.metrics())
        return result

    async def openapi(self) -> dict[str, Any]:
        """The OpenAPI document."""
        result: dict[str, Any] = await self._send(calls.openapi())
        return result

    async def reset_step(
        self, task_uuid: UUID | str, step_uuid: UUID | str, *, reason: str | None = None, by: str | None = None
    ) -> wire.StepResponse:
        """Reset a failed step so it runs again."""
        action = wire.StepActionRequest(action_type="reset_for_retry", reason=reason, reset_by=by)
        return await self.step_action(task_uuid, step_uuid, action)

    async def resolve_step(
        self, task_uuid: UUID | str, step_uuid: UUID | str, *, reason: str | None = None, by: str | None = None
    ) -> wire.StepResponse:
        """Mark a step resolved by hand; its dependents run with no result from it."""
        action = wire.StepActionRequest(action_type="resolve_manually", reason=reason, resolved_by=by)
        return await self.step_action(task_uuid, step_uuid, action)

    async def complete_step(
        self,
        task_uuid: UUID | str,
        step_uuid: UUID | str,
        result: Any,
        *,
        reason: str | None = None,
        by: str | None = None,
    ) -> wire.StepResponse:
        """Complete a step by hand with the given result; its dependents see that result."""
        action = wire.StepActionRequest(
            action_type="complete_manually", completion_data={"result": result}, reason=reason, completed_by=by
        )
        return await self.step_action(task_uuid, step_uuid, action)

    async def list_dlq(
        self, *, resolution_status: str | None = None, dlq_reason: str | None = None, limit: int = 50, offset: int = 0
    ) -> wire.DlqListResponse:
        """Dead-letter queue entries, newest first."""
        result: wire.DlqListResponse = await self._send(
            calls.list_dlq(resolution_status=resolution_status, dlq_reason=dlq_reason, limit=limit, offset=offset)
        )
        return result

    async def dlq_for_task(self, task_uuid: UUID | str) -> wire.DlqTaskEntries:
        """Every DLQ entry of a task."""
        result: wire.DlqTaskEntries = await self._send(calls.dlq_for_task(task_uuid))
        return result

    async def get_dlq_entry(self, entry_uuid: UUID | str) -> wire.DlqEntry:
        result: wire.DlqEntry = await self._send(calls.get_dlq_entry(entry_uuid))
        return result

    async def update_dlq_entry(self, entry_uuid: UUID | str, update: wire.DlqEntryUpdate) -> wire.DlqEntry:
        """Record an investigation's outcome."""
        result: wire.DlqEntry = await self._send(calls.update_dlq_entry(entry_uuid, update))
        return result

    async def dlq_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._send(calls.dlq_stats())
        return result

    async def dlq_investigation_queue(self, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = await self._send(calls.dlq_investigation_queue(limit))
        return result

    async def dlq_staleness(self, health_status: str | None = None, limit: int = 100) -> dict[str, Any]:
        result: dict[str, Any] = await self._send(calls.dlq_staleness(health_status, limit))
        return result
