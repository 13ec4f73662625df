"""Task creation: validate, compute the identity, insert everything and enqueue the first steps, in one commit.

A task is committed together with its first steps' ``enqueued`` transitions and their messages, so the caller
returns as soon as workers can start, and nothing is half-written when any part fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasker.engine.finalizer import TaskPlan, apply_plans
from tasker.errors import DuplicateTaskError, TaskerError
from tasker.messaging.router import TASK_REQUESTS_QUEUE, worker_queue
from tasker.messaging.transport import Message, Transport
from tasker.model.identity import check_json_limits, identity_hash
from tasker.model.ids import uuid7
from tasker.model.machines import TaskEvent
from tasker.model.requests import TaskRequest, validate_context
from tasker.model.states import StepState, TaskState
from tasker.model.template import TaskTemplate
from tasker.store.db import Connection, pipelined_transaction
from tasker.store.tasks import (
    NewStep,
    NewTask,
    TaskStart,
    TemplateChangedError,
    task_create,
    task_find_by_identity,
)
from tasker.store.templates import TemplateRef, template_get_ref
from tasker.store.transitions import TaskChange
from tasker.telemetry import STEPS_ENQUEUED, TASKS_REQUESTED, task_span

log = logging.getLogger("tasker.task_requests")


@dataclass(frozen=True)
class CreatedTask:
    task_uuid: UUID
    correlation_id: UUID
    named_task_uuid: UUID
    state: TaskState
    step_uuids: dict[str, UUID]
    enqueued: list[UUID]


def build_task(template: TaskTemplate, ref: TemplateRef, request: TaskRequest, identity: str) -> NewTask:
    """Rows of a new task: the template's initial steps (reference §5.4) and the edges among them, made from
    ``template`` (``ref``'s, for the environment) and checked at creation against ``ref``'s digest."""
    names = template.initial_step_names()
    step_uuids = {name: uuid7() for name in names}
    steps = [
        NewStep(
            step_uuid=step_uuids[name],
            name=name,
            retryable=template.step(name).retry.retryable,
            max_attempts=template.step(name).retry.max_attempts,
            inputs=dict(template.step(name).handler.initialization) or None,
        )
        for name in names
    ]
    return NewTask(
        task_uuid=uuid7(),
        named_task_uuid=ref.named_task_uuid,
        template_digest=ref.digest,
        identity_hash=identity,
        correlation_id=request.correlation_id or uuid7(),
        context=request.context,
        steps=steps,
        edges=[(step_uuids[parent], step_uuids[child]) for parent, child in template.initial_edges()],
        initiator=request.initiator,
        source_system=request.source_system,
        reason=request.stored_reason(),
        tags=request.tags,
        priority=request.priority,
        parent_correlation_id=request.parent_correlation_id,
        requested_at=request.requested_at_utc(),
        request_details=request.details() or None,
    )


async def check_request(
    conn: Connection, request: TaskRequest, *, env: str, cached: bool = False
) -> tuple[TemplateRef, TaskTemplate]:
    """The checks a request passes before anything is written (its template exists, its JSON is within limits,
    its context matches the input schema); returns the template as read and for ``env``. Schedules run them when
    they are added, too. ``cached``: from this process's last copy of the template (see ``create_task``)."""
    ref = await template_get_ref(conn, request.namespace, request.name, request.version, cached=cached)
    template = ref.template.for_environment(env)
    check_json_limits(request.context, "context")
    check_json_limits(request.tags, "tags")
    validate_context(template.input_schema, request.context, template.key)
    return ref, template


async def create_task(
    conn: Connection, transport: Transport, request: TaskRequest, *, env: str, processor_uuid: UUID | None = None
) -> CreatedTask:
    """Create a task and enqueue its root steps; raises a typed error, writing nothing, on bad input.

    The template comes from this process's last copy, without a round trip; the create statement checks that the
    copy is still the registered template (its digest) and writes nothing when it is not, and the task is then
    created again from the template read anew."""
    try:
        return await _create_task(conn, transport, request, env=env, processor_uuid=processor_uuid, cached=True)
    except TemplateChangedError:
        return await _create_task(conn, transport, request, env=env, processor_uuid=processor_uuid, cached=False)


async def _create_task(
    conn: Connection,
    transport: Transport,
    request: TaskRequest,
    *,
    env: str,
    processor_uuid: UUID | None,
    cached: bool,
) -> CreatedTask:
    ref, template = await check_request(conn, request, env=env, cached=cached)
    named_task_uuid = ref.named_task_uuid
    identity = identity_hash(template.identity_strategy, named_task_uuid, request.context, request.idempotency_key)
    task = build_task(template, ref, request, identity)
    names = {s.step_uuid: s.name for s in task.steps}
    children = {child for _, child in task.edges}
    roots = [(s.step_uuid, StepState.PENDING) for s in task.steps if s.step_uuid not in children]
    metadata = {"processor_uuid": processor_uuid}
    # Every root is ready (pending, no parents, no attempts yet): the plan is known before anything is written.
    events = (
        [TaskEvent.START, TaskEvent.READY_STEPS_FOUND, TaskEvent.STEPS_ENQUEUED]
        if roots
        else [TaskEvent.START, TaskEvent.NO_STEPS_FOUND]
    )
    plan = TaskPlan(
        task.task_uuid,
        TaskState.PENDING,
        TaskState.STEPS_IN_PROCESS if roots else TaskState.COMPLETE,
        events,
        roots,
        template.namespace_name,
        task.correlation_id,
    )
    try:
        with task_span(
            "task.create",
            task.correlation_id,
            task_uuid=task.task_uuid,
            namespace=template.namespace_name,
            template=template.key,
            steps=len(task.steps),
            enqueued=len(roots),
        ):
            # pipelined: BEGIN goes out with the create; the send and COMMIT follow the create's answer
            async with pipelined_transaction(conn):
                if roots:
                    await _create_started(conn, transport, task, plan, metadata)
                else:
                    await task_create(conn, task)
                    await apply_plans(conn, transport, [plan], metadata)
    except DuplicateTaskError:
        existing = await task_find_by_identity(conn, identity)
        raise DuplicateTaskError(
            f"a task with this identity already exists: {existing}", existing_task_uuid=str(existing)
        ) from None
    TASKS_REQUESTED.labels(template.namespace_name).inc()
    STEPS_ENQUEUED.labels(template.namespace_name).inc(len(roots))
    return CreatedTask(
        task_uuid=task.task_uuid,
        correlation_id=task.correlation_id,
        named_task_uuid=named_task_uuid,
        state=plan.goal,
        step_uuids={names[s.step_uuid]: s.step_uuid for s in task.steps},
        enqueued=[step for step, _ in roots],
    )


async def _create_started(
    conn: Connection, transport: Transport, task: NewTask, plan: TaskPlan, metadata: dict[str, Any]
) -> None:
    """Write the task already started (its route to ``plan.goal`` and its root steps enqueued, the rows the
    orchestration code would write under the task's lock a statement later: nobody else can see the task yet), then
    send the root steps' messages."""
    move = TaskChange(task.task_uuid, plan.state, plan.events, {**metadata, "correlation_id": task.correlation_id})
    await task_create(conn, task, TaskStart(move, [step for step, _ in plan.enqueue]))
    await transport.send_many(
        conn,
        worker_queue(plan.namespace),
        [
            {"task_uuid": str(task.task_uuid), "step_uuid": str(step), "correlation_id": str(task.correlation_id)}
            for step, _ in plan.enqueue
        ],
    )


async def consume_task_request(
    conn: Connection, transport: Transport, message: Message, *, env: str, processor_uuid: UUID | None = None
) -> CreatedTask | None:
    """Create the task a queued request asks for and acknowledge the request, in one transaction.

    A crash between the two can then neither lose the request nor create its task twice on redelivery. A request
    that is refused (bad input, unknown template, duplicate identity) is acknowledged with nothing created: sending
    it again would be refused again.
    """
    async with conn.transaction():
        created = None
        try:
            request = TaskRequest.model_validate(message.body.get("task_request", message.body))
            created = await create_task(conn, transport, request, env=env, processor_uuid=processor_uuid)
        except (TaskerError, ValueError) as exc:
            log.warning("task request %s refused: %s", message.msg_id, exc)
        await transport.ack_many(conn, TASK_REQUESTS_QUEUE, [message.msg_id])
    return created
