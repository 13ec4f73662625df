"""The service layer under every face: what each API route and CLI command does, on one database connection,
returning wire models.

No HTTP here: the API wraps these in routes, and the CLI calls them directly when it talks to the database.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import ValidationError

from tasker.engine.operator import cancel_task, retry_failed_steps, step_action
from tasker.engine.task_requests import create_task
from tasker.errors import ConfigurationError, NotFoundError, TemplateError, TemplateLimitError
from tasker.messaging.router import worker_queue
from tasker.messaging.transport import Transport
from tasker.model import wire
from tasker.model.requests import TaskRequest
from tasker.model.template import TaskTemplate, load_template_text
from tasker.store import listing
from tasker.store.db import Connection
from tasker.store.tasks import task_edges
from tasker.store.templates import template_get, template_get_by_uuid, template_list

TERMINAL_FOR_STATUS = ("complete", "error", "cancelled", "resolved_manually")
UNSERVED_AFTER_SECONDS = 60  # a namespace's queue holding messages unread this long has no worker polling it


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


async def _tasks(conn: Connection, task_uuids: list[UUID], *, with_steps: bool) -> list[wire.TaskResponse]:
    rows = await listing.task_details_many(conn, task_uuids)
    found = []
    for row in rows:
        steps = await steps_of(conn, row["task_uuid"]) if with_steps else []
        found.append(
            wire.TaskResponse.model_validate(
                {
                    **row,
                    "context": row["context"] or {},
                    "tags": row["tags"] or [],
                    "completion_percentage": float(row["completion_percentage"] or 0),
                    "total_steps": row["total_steps"] or 0,
                    "steps": steps,
                }
            )
        )
    return found


async def get_task(conn: Connection, task_uuid: UUID) -> wire.TaskResponse:
    found = await _tasks(conn, [task_uuid], with_steps=True)
    if not found:
        raise NotFoundError(f"task {task_uuid} does not exist", task_uuid=str(task_uuid))
    return found[0]


async def create(conn: Connection, transport: Transport, request: TaskRequest, *, env: str) -> wire.TaskResponse:
    """Create the task; the response's ``warnings`` say when no worker seems to serve its namespace."""
    created = await create_task(conn, transport, request, env=env)
    task = await get_task(conn, created.task_uuid)
    warning = await unserved_namespace_warning(conn, request.namespace)
    return task.model_copy(update={"warnings": [warning]}) if warning else task


async def unserved_namespace_warning(conn: Connection, namespace: str) -> str | None:
    """Why a new task of ``namespace`` may sit unworked, from what the database already shows; None when nothing
    points that way (which does not prove a worker serves the namespace).

    No worker connected to the database at all (workers connect as application_name 'tasker-worker'), or the
    namespace's queue holding messages visible for over UNSERVED_AFTER_SECONDS that nobody has read: workers run,
    but none polls this namespace. A worker's connection does not name its namespaces, so a namespace no running
    worker serves goes unnoticed until its first message has waited that long.
    """
    hint = f"start one with `tasker worker --namespace {namespace}`"
    if await listing.worker_connection_count(conn) == 0:
        return f"no worker is connected to the database: this task's steps wait until one runs; {hint}"
    try:
        queue = worker_queue(namespace)
    except ConfigurationError:
        return None
    waiting, oldest = await listing.queue_unread(conn, queue, UNSERVED_AFTER_SECONDS)
    if waiting:
        return (
            f"{waiting} message(s) in queue {queue} have waited up to {oldest:.0f} s unread: no running worker"
            f" seems to serve namespace {namespace!r}; {hint}"
        )
    return None


async def list_tasks(
    conn: Connection, where: listing.TaskFilter, *, page: int = 1, per_page: int = 25
) -> wire.TaskListResponse:
    uuids, total = await listing.task_list(conn, where, limit=per_page, offset=(page - 1) * per_page)
    pages = math.ceil(total / per_page) if total else 0
    return wire.TaskListResponse(
        tasks=await _tasks(conn, uuids, with_steps=False),
        pagination=wire.Pagination(
            page=page,
            per_page=per_page,
            total_count=total,
            total_pages=pages,
            has_next=page < pages,
            has_previous=page > 1,
        ),
    )


async def cancel(conn: Connection, task_uuid: UUID, *, actor: str = "api") -> wire.TaskResponse:
    await cancel_task(conn, task_uuid=task_uuid, actor=actor, reason="cancelled through the API")
    return await get_task(conn, task_uuid)


async def steps_of(conn: Connection, task_uuid: UUID) -> list[wire.StepResponse]:
    return [wire.StepResponse.model_validate(r) for r in await listing.step_details(conn, task_uuid)]


async def list_steps(conn: Connection, task_uuid: UUID) -> list[wire.StepResponse]:
    await get_task(conn, task_uuid)  # 404 for an unknown task rather than an empty list
    return await steps_of(conn, task_uuid)


async def get_step(conn: Connection, task_uuid: UUID, step_uuid: UUID) -> wire.StepResponse:
    rows = await listing.step_details(conn, task_uuid, [step_uuid])
    if not rows:
        await get_task(conn, task_uuid)
        raise NotFoundError(f"task {task_uuid} has no step {step_uuid}", step_uuid=str(step_uuid))
    return wire.StepResponse.model_validate(rows[0])


async def act_on_step(
    conn: Connection, transport: Transport, task_uuid: UUID, step_uuid: UUID, action: wire.StepActionRequest
) -> wire.StepResponse:
    await step_action(
        conn,
        transport,
        task_uuid=task_uuid,
        step_uuid=step_uuid,
        action=action.action_type,
        actor=action.actor(),
        reason=action.reason,
        results=action.results(),
    )
    return await get_step(conn, task_uuid, step_uuid)


async def retry_failed(
    conn: Connection, transport: Transport, task_uuid: UUID, *, actor: str = "api"
) -> wire.TaskResponse:
    await get_task(conn, task_uuid)
    await retry_failed_steps(conn, transport, task_uuid=task_uuid, actor=actor, reason="retry of every failed step")
    return await get_task(conn, task_uuid)


async def audit(conn: Connection, task_uuid: UUID, step_uuid: UUID) -> list[wire.StepAuditResponse]:
    await get_step(conn, task_uuid, step_uuid)
    return [wire.StepAuditResponse.model_validate(r) for r in await listing.step_audit(conn, task_uuid, step_uuid)]


async def summary(conn: Connection, task_uuid: UUID) -> wire.TaskSummaryResponse:
    task = await get_task(conn, task_uuid)
    rows = await listing.task_details_many(conn, [task_uuid])
    template = await template_get_by_uuid(conn, rows[0]["named_task_uuid"])
    names = {s.step_uuid: s.name for s in task.steps}
    edges = [
        wire.DagEdge(from_step=names[e["from_step_uuid"]], to_step=names[e["to_step_uuid"]])
        for e in await task_edges(conn, task_uuid)
        if e["from_step_uuid"] in names and e["to_step_uuid"] in names
    ]
    dlq = await listing.dlq_status(conn, task_uuid)
    base = f"/v1/tasks/{task_uuid}"
    return wire.TaskSummaryResponse(
        task=task.model_copy(update={"steps": []}),
        template=wire.TaskTemplateSummary(
            name=template.name,
            namespace=template.namespace_name,
            version=template.version,
            description=template.description,
            steps=[
                wire.TemplateStepSummary(
                    name=s.name,
                    step_type=s.type,
                    handler=s.handler.callable,
                    dependencies=list(s.dependencies),
                    retryable=s.retry.retryable,
                    max_attempts=s.retry.max_attempts,
                )
                for s in template.steps
            ],
        ),
        steps=task.steps,
        edges=edges,
        dlq=wire.DlqStatus(in_dlq=dlq is not None, **(dlq or {})),
        links={"self": base, "steps": f"{base}/workflow_steps", "summary": f"{base}/summary"},
    )


async def templates(conn: Connection, namespace: str | None = None) -> wire.TemplateListResponse:
    found = await template_list(conn, namespace)
    counts: dict[str, int] = {}
    for t in found:
        counts[t.namespace] = counts.get(t.namespace, 0) + 1
    return wire.TemplateListResponse(
        namespaces=[wire.NamespaceSummary(name=n, template_count=c) for n, c in sorted(counts.items())],
        templates=[
            wire.TemplateSummary(
                name=t.name,
                namespace=t.namespace,
                version=t.version,
                description=t.description,
                step_count=t.step_count,
            )
            for t in found
        ],
        total_count=len(found),
    )


async def template(conn: Connection, namespace: str, name: str, version: str) -> wire.TemplateDetail:
    _, found = await template_get(conn, namespace, name, version)
    return wire.TemplateDetail(
        name=found.name,
        namespace=found.namespace_name,
        version=found.version,
        description=found.description,
        configuration=found.to_configuration(),
        steps=[
            wire.TemplateStepDetail(
                name=s.name,
                description=s.description,
                default_retryable=s.retry.retryable,
                default_max_attempts=s.retry.max_attempts,
                result_schema=s.result_schema,
            )
            for s in found.steps
        ],
    )


def validate_template(body: wire.TemplateValidateRequest) -> wire.TemplateValidateResponse:
    """Check a template without touching the database; invalid ones are a normal answer, not an error."""
    try:
        if body.yaml is not None:
            parsed = load_template_text(body.yaml, "request body")
        elif body.template is not None:
            parsed = TaskTemplate.model_validate(body.template, context={"source": "request body"})
        else:
            return wire.TemplateValidateResponse(valid=False, errors=["give the template as `yaml` or `template`"])
    except TemplateLimitError:
        raise  # not a verdict on the template: the text was refused unread (alias bomb, deep nesting, size)
    except TemplateError as exc:
        return wire.TemplateValidateResponse(valid=False, errors=[exc.message])
    except ValidationError as exc:
        return wire.TemplateValidateResponse(valid=False, errors=[str(e["msg"]) for e in exc.errors()])
    return wire.TemplateValidateResponse(
        valid=True,
        namespace=parsed.namespace_name,
        name=parsed.name,
        version=parsed.version,
        step_count=len(parsed.steps),
    )


async def performance(conn: Connection, hours: int = 24) -> wire.AnalyticsPerformance:
    now = _utcnow()
    since = now - timedelta(hours=hours)
    row = await listing.analytics_performance(conn, since)
    total, completed, failed = int(row["total_tasks"]), int(row["completed_tasks"]), int(row["failed_tasks"])
    ended = completed + failed
    return wire.AnalyticsPerformance(
        total_tasks=total,
        active_tasks=int(row["active_tasks"]),
        completed_tasks=completed,
        failed_tasks=failed,
        completion_rate=completed / total if total else 0.0,
        error_rate=failed / total if total else 0.0,
        average_task_duration_seconds=row["average_task_duration_seconds"] or 0.0,
        average_step_duration_seconds=row["average_step_duration_seconds"] or 0.0,
        tasks_per_hour=total / hours,
        steps_per_hour=int(row["total_steps"]) / hours,
        system_health_score=completed / ended if ended else 1.0,
        analysis_period_start=since,
        calculated_at=now,
    )


async def health_counts(conn: Connection) -> wire.SystemHealthCounts:
    counts = await listing.state_counts(conn)
    return wire.SystemHealthCounts(
        tasks=counts["task"],
        steps=counts["step"],
        total_tasks=sum(counts["task"].values()),
        total_steps=sum(counts["step"].values()),
    )


async def bottlenecks(
    conn: Connection, *, limit: int = 10, min_executions: int = 5, hours: int = 24, pool_utilization: float = 0.0
) -> wire.BottleneckAnalysis:
    steps, tasks = await listing.analytics_slow(
        conn, _utcnow() - timedelta(hours=hours), limit=limit, min_executions=min_executions
    )
    slow_steps = [wire.SlowStep.model_validate(r) for r in steps]
    recommendations = [
        f"step {s.step_name} of {s.namespace_name}/{s.task_name} fails {s.error_rate:.0%} of the time"
        for s in slow_steps
        if s.error_rate >= 0.1
    ]
    if pool_utilization > 0.8:
        recommendations.append("the API's database pool is nearly exhausted: raise pool_max_size")
    return wire.BottleneckAnalysis(
        slow_steps=slow_steps,
        slow_tasks=[wire.SlowTask.model_validate(r) for r in tasks],
        resource_utilization=wire.ResourceUtilization(
            database_pool_utilization=pool_utilization, system_health=await health_counts(conn)
        ),
        recommendations=recommendations,
    )
