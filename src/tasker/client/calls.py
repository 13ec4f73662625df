"""Every route as a call description (method, path, query, body, response model), shared by both clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import BaseModel, TypeAdapter

from tasker.model import wire
from tasker.model.requests import TaskRequest


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    response: Any  # a pydantic model class, a TypeAdapter, or None for plain text
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None


STEPS = TypeAdapter(list[wire.StepResponse])
OBJECT = TypeAdapter(dict[str, Any])
AUDIT = TypeAdapter(list[wire.StepAuditResponse])


def parse(call: Call, text: str) -> Any:
    if call.response is None:
        return text
    if isinstance(call.response, TypeAdapter):
        return call.response.validate_json(text)
    return call.response.model_validate_json(text)


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _body(value: BaseModel | dict[str, Any]) -> Any:
    return value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else value


def create_task(request: TaskRequest | dict[str, Any]) -> Call:
    return Call("POST", "/v1/tasks", wire.TaskResponse, body=_body(request))


def list_tasks(
    *,
    namespace: str | None = None,
    name: str | None = None,
    status: str | None = None,
    initiator: str | None = None,
    source_system: str | None = None,
    page: int = 1,
    per_page: int = 25,
) -> Call:
    params: dict[str, Any] = {"namespace": namespace, "name": name, "status": status, "initiator": initiator}
    params |= {"source_system": source_system, "page": page, "per_page": per_page}
    return Call("GET", "/v1/tasks", wire.TaskListResponse, params=_clean(params))


def get_task(task_uuid: UUID | str) -> Call:
    return Call("GET", f"/v1/tasks/{task_uuid}", wire.TaskResponse)


def cancel_task(task_uuid: UUID | str) -> Call:
    return Call("DELETE", f"/v1/tasks/{task_uuid}", wire.TaskResponse)


def task_summary(task_uuid: UUID | str) -> Call:
    return Call("GET", f"/v1/tasks/{task_uuid}/summary", wire.TaskSummaryResponse)


def list_steps(task_uuid: UUID | str) -> Call:
    return Call("GET", f"/v1/tasks/{task_uuid}/workflow_steps", STEPS)


def get_step(task_uuid: UUID | str, step_uuid: UUID | str) -> Call:
    return Call("GET", f"/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", wire.StepResponse)


def step_action(task_uuid: UUID | str, step_uuid: UUID | str, action: wire.StepActionRequest) -> Call:
    return Call("PATCH", f"/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}", wire.StepResponse, body=_body(action))


def retry_failed(task_uuid: UUID | str) -> Call:
    return Call("POST", f"/v1/tasks/{task_uuid}/retry_failed", wire.TaskResponse)


def step_audit(task_uuid: UUID | str, step_uuid: UUID | str) -> Call:
    return Call("GET", f"/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}/audit", AUDIT)


def list_templates(namespace: str | None = None) -> Call:
    return Call("GET", "/v1/templates", wire.TemplateListResponse, params=_clean({"namespace": namespace}))


def get_template(namespace: str, name: str, version: str) -> Call:
    return Call("GET", f"/v1/templates/{namespace}/{name}/{version}", wire.TemplateDetail)


def validate_template(*, yaml: str | None = None, template: dict[str, Any] | None = None) -> Call:
    body = _body(wire.TemplateValidateRequest(yaml=yaml, template=template))
    return Call("POST", "/v1/templates/validate", wire.TemplateValidateResponse, body=body)


def performance(hours: int = 24) -> Call:
    return Call("GET", "/v1/analytics/performance", wire.AnalyticsPerformance, params={"hours": hours})


def bottlenecks(limit: int = 10, min_executions: int = 5) -> Call:
    params = {"limit": limit, "min_executions": min_executions}
    return Call("GET", "/v1/analytics/bottlenecks", wire.BottleneckAnalysis, params=params)


def health(which: str = "") -> Call:
    return Call("GET", f"/health/{which}" if which else "/health", wire.HealthResponse)


def metrics() -> Call:
    return Call("GET", "/metrics", None)


def openapi() -> Call:
    return Call("GET", "/api-docs/openapi.json", TypeAdapter(dict[str, Any]))


def list_dlq(
    *, resolution_status: str | None = None, dlq_reason: str | None = None, limit: int = 50, offset: int = 0
) -> Call:
    params = _clean(
        {"resolution_status": resolution_status, "dlq_reason": dlq_reason, "limit": limit, "offset": offset}
    )
    return Call("GET", "/v1/dlq", wire.DlqListResponse, params=params)


def dlq_for_task(task_uuid: UUID | str) -> Call:
    return Call("GET", f"/v1/dlq/task/{task_uuid}", wire.DlqTaskEntries)


def get_dlq_entry(entry_uuid: UUID | str) -> Call:
    return Call("GET", f"/v1/dlq/entry/{entry_uuid}", wire.DlqEntry)


def update_dlq_entry(entry_uuid: UUID | str, update: wire.DlqEntryUpdate) -> Call:
    return Call("PATCH", f"/v1/dlq/entry/{entry_uuid}", wire.DlqEntry, body=_body(update))


def dlq_stats() -> Call:
    return Call("GET", "/v1/dlq/stats", OBJECT)


def dlq_investigation_queue(limit: int = 100) -> Call:
    return Call("GET", "/v1/dlq/investigation-queue", OBJECT, params={"limit": limit})


def dlq_staleness(health_status: str | None = None, limit: int = 100) -> Call:
    return Call("GET", "/v1/dlq/staleness", OBJECT, params=_clean({"health_status": health_status, "limit": limit}))
