"""Ready steps → ``enqueued`` and a message to their namespace's worker queue, in the caller's transaction
(state before queue, both committed together, so they can never disagree)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from tasker.messaging.router import worker_queue
from tasker.messaging.transport import Transport
from tasker.model.machines import StepEvent
from tasker.model.states import StepState
from tasker.store.db import Connection
from tasker.store.transitions import StepChange, step_transition_many

ENQUEUE_EVENTS = {
    StepState.PENDING: [StepEvent.ENQUEUE],
    StepState.WAITING_FOR_RETRY: [StepEvent.RETRY, StepEvent.ENQUEUE],
}


def step_message(task_uuid: UUID, step_uuid: UUID, correlation_id: UUID) -> dict[str, Any]:
    """The whole message: identifiers only; the state lives in PostgreSQL."""
    return {"task_uuid": str(task_uuid), "step_uuid": str(step_uuid), "correlation_id": str(correlation_id)}


async def enqueue_steps(
    conn: Connection,
    transport: Transport,
    *,
    task_uuid: UUID,
    namespace: str,
    correlation_id: UUID,
    steps: Sequence[tuple[UUID, StepState]],
    metadata: dict[str, Any],
) -> list[UUID]:
    """Enqueue the given (step, current state) pairs; returns the steps this call enqueued."""
    changes = [
        StepChange(step_uuid, state, ENQUEUE_EVENTS[state], metadata)
        for step_uuid, state in steps
        if state in ENQUEUE_EVENTS
    ]
    won = await step_transition_many(conn, changes)
    if won:
        queue = worker_queue(namespace)
        await transport.ensure_queue(conn, queue)
        await transport.send_many(conn, queue, [step_message(task_uuid, step, correlation_id) for step in won])
    return list(won)
