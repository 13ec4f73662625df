"""A task's next state from its steps: enqueue what is ready, then move the task where its steps say it is.

Called with the task row locked (``store.tasks.task_lock``), so two orchestrators finishing sibling steps at the
same moment are serialised and the second sees the first's commit: a fan-in step is never missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasker.engine.enqueuer import enqueue_steps
from tasker.messaging.transport import Transport
from tasker.model.machines import ORCHESTRATION_EVENTS, TaskEvent, task_route
from tasker.model.states import (
    STEP_IN_FLIGHT,
    STEP_SATISFIES_DEPENDENCIES,
    TASK_TERMINAL,
    StepState,
    TaskState,
)
from tasker.store.db import Connection
from tasker.store.steps import step_readiness
from tasker.store.transitions import TaskChange, task_transition


@dataclass(frozen=True)
class Evaluation:
    state: TaskState
    enqueued: list[UUID]


def goal_state(states: Iterable[StepState]) -> TaskState:
    """Where a task belongs given its steps' states (failures first: a failed task schedules nothing new)."""
    states = list(states)
    if any(s is StepState.ERROR for s in states):
        return TaskState.BLOCKED_BY_FAILURES
    if any(s in STEP_IN_FLIGHT for s in states):
        return TaskState.STEPS_IN_PROCESS
    if all(s in STEP_SATISFIES_DEPENDENCIES for s in states):
        return TaskState.COMPLETE
    if any(s is StepState.WAITING_FOR_RETRY for s in states):
        return TaskState.WAITING_FOR_RETRY
    return TaskState.WAITING_FOR_DEPENDENCIES


async def evaluate_task(
    conn: Connection,
    transport: Transport,
    *,
    task_uuid: UUID,
    state: TaskState,
    namespace: str,
    correlation_id: UUID,
    metadata: dict[str, Any],
    resume: bool = False,
) -> Evaluation:
    """Enqueue the task's ready steps and transition the task; ``resume`` lets an operator's action revive a task
    that is blocked or in error."""
    if state in TASK_TERMINAL and not (resume and state is TaskState.ERROR):
        return Evaluation(state, [])
    if state is TaskState.BLOCKED_BY_FAILURES and not resume:
        return Evaluation(state, [])
    rows = await step_readiness(conn, task_uuid)
    states = {row["workflow_step_uuid"]: StepState(row["current_state"]) for row in rows}
    enqueued: list[UUID] = []
    if StepState.ERROR not in states.values():
        ready = [
            (row["workflow_step_uuid"], StepState(row["current_state"])) for row in rows if row["ready_for_execution"]
        ]
        enqueued = await enqueue_steps(
            conn,
            transport,
            task_uuid=task_uuid,
            namespace=namespace,
            correlation_id=correlation_id,
            steps=ready,
            metadata=metadata,
        )
        states.update(dict.fromkeys(enqueued, StepState.ENQUEUED))
    goal = goal_state(states.values())
    allowed = ORCHESTRATION_EVENTS | {TaskEvent.RESUME} if resume else ORCHESTRATION_EVENTS
    events = task_route(state, goal, allowed)
    if events:
        state = await task_transition(conn, TaskChange(task_uuid, state, events, metadata))
    return Evaluation(state, enqueued)
