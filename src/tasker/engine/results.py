"""Step results → complete, retry after a backoff, or permanent failure; then the task moves on.

Each result message is applied in one transaction that also locks the task, runs the dynamic-step hooks,
enqueues newly ready steps, finalises the task and deletes the message. A crash anywhere rolls all of it back
and the message comes back after its visibility timeout; a duplicate finds the step already past
``enqueued_for_orchestration`` and changes nothing. So a result is applied exactly once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasker.engine import dynamic
from tasker.engine.finalizer import evaluate_task
from tasker.messaging.router import STEP_RESULTS_QUEUE
from tasker.messaging.transport import Message, Transport
from tasker.model.machines import StepEvent
from tasker.model.retry import backoff_seconds
from tasker.model.states import StepState, TaskState
from tasker.model.template import TaskTemplate
from tasker.store.db import Connection
from tasker.store.steps import step_outcome_many
from tasker.store.tasks import task_lock
from tasker.store.template_cache import TemplateCache
from tasker.store.transitions import StepChange, step_transition


@dataclass(frozen=True)
class Applied:
    step_uuid: UUID
    step_state: StepState | None
    task_state: TaskState | None
    retry_in_seconds: float | None = None


def retry_decision(outcome: dict[str, Any], template: TaskTemplate) -> float | None:
    """Seconds until the retry, or None when the failure is permanent (not retryable, or attempts used up)."""
    results = outcome["results"] or {}
    error = results.get("error") or {}
    retryable = bool(results.get("metadata", {}).get("retryable", error.get("retryable", True)))
    if not (outcome["retryable"] and retryable and outcome["attempts"] < outcome["max_attempts"]):
        return None
    policy = template.step(outcome["template_step_name"]).retry
    return backoff_seconds(
        policy.backoff,
        policy.backoff_base_ms,
        policy.max_backoff_ms,
        outcome["attempts"],
        retry_after_seconds=error.get("retry_after_seconds"),
    )


async def _finish_step(
    conn: Connection, outcome: dict[str, Any], template: TaskTemplate, metadata: dict[str, Any]
) -> tuple[StepState | None, float | None]:
    state = StepState(outcome["state"])
    step_uuid = outcome["workflow_step_uuid"]
    if state is StepState.ENQUEUED_FOR_ORCHESTRATION:
        await step_transition(conn, StepChange(step_uuid, state, [StepEvent.COMPLETE], metadata))
        await dynamic.after_step_completed(conn, outcome, template)
        return StepState.COMPLETE, None
    if state is StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION:
        delay = retry_decision(outcome, template)
        if delay is None:
            await step_transition(conn, StepChange(step_uuid, state, [StepEvent.FAIL], metadata))
            return StepState.ERROR, None
        change = StepChange(
            step_uuid,
            state,
            [StepEvent.WAIT_FOR_RETRY],
            {**metadata, "retry_delay_ms": round(delay * 1000, 3)},
            backoff_seconds=math.ceil(delay),
        )
        await step_transition(conn, change)
        return StepState.WAITING_FOR_RETRY, delay
    return None, None  # a duplicate or late message: the result was applied already


async def apply_result(
    conn: Connection,
    transport: Transport,
    templates: TemplateCache,
    message: Message,
    *,
    processor_uuid: UUID,
) -> Applied:
    """Apply one step-result message in one transaction (see the module docstring)."""
    step_uuid = UUID(message.body["step_uuid"])
    async with conn.transaction():
        task_uuid = UUID(message.body["task_uuid"])
        task = await task_lock(conn, task_uuid)
        outcomes = await step_outcome_many(conn, [step_uuid])
        step_state: StepState | None = None
        delay: float | None = None
        task_state = TaskState(task["state"])
        if outcomes:
            outcome = outcomes[0]
            template = await templates.get(conn, outcome["named_task_uuid"])
            metadata = {"processor_uuid": processor_uuid, "correlation_id": task["correlation_id"]}
            step_state, delay = await _finish_step(conn, outcome, template, metadata)
            if step_state is not None:
                evaluation = await evaluate_task(
                    conn,
                    transport,
                    task_uuid=task_uuid,
                    state=task_state,
                    namespace=template.namespace_name,
                    correlation_id=task["correlation_id"],
                    metadata=metadata,
                )
                task_state = evaluation.state
        await transport.ack_many(conn, STEP_RESULTS_QUEUE, [message.msg_id])
    return Applied(step_uuid, step_state, task_state, delay)
