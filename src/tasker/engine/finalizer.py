"""A task's next state from its steps: enqueue what is ready, then move the task where its steps say it is.

Planning is a pure function of the task's state and its steps' readiness rows; applying a batch of plans queues
one statement whatever the batch size (the step compare-and-swaps, the sends, the task compare-and-swaps and the
acknowledgements), so result processing stays at a fixed number of round trips per batch.

Callers hold the task row lock (``store.tasks.task_lock*``), so two orchestrators finishing sibling steps at the
same moment are serialised and the second sees the first's commit: a fan-in step is never missed. Under that lock
only this transaction moves the task's steps out of ``pending``/``waiting_for_retry`` and only it moves the task,
so those compare-and-swaps cannot lose, and their messages can go out in the same statement.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasker.messaging.router import STEP_RESULTS_QUEUE, channel, worker_queue
from tasker.messaging.transport import Transport
from tasker.model.machines import ORCHESTRATION_EVENTS, StepEvent, TaskEvent, task_route
from tasker.model.states import (
    STEP_IN_FLIGHT,
    STEP_SATISFIES_DEPENDENCIES,
    TASK_TERMINAL,
    StepState,
    TaskState,
)
from tasker.store.db import Connection
from tasker.store.dynamic import step_isolated_many
from tasker.store.steps import step_readiness
from tasker.store.tasks import Delivery
from tasker.store.transitions import StepChange, TaskChange

# How a ready step is enqueued: from pending directly, from waiting_for_retry through pending.
ENQUEUE_EVENTS = {
    StepState.PENDING: [StepEvent.ENQUEUE],
    StepState.WAITING_FOR_RETRY: [StepEvent.RETRY, StepEvent.ENQUEUE],
}


@dataclass(frozen=True)
class Evaluation:
    state: TaskState
    enqueued: list[UUID]


@dataclass(frozen=True)
class TaskPlan:
    """What evaluating one task decided: steps to enqueue and the events that move the task."""

    task_uuid: UUID
    state: TaskState
    goal: TaskState
    events: list[TaskEvent]
    enqueue: list[tuple[UUID, StepState]]
    namespace: str
    correlation_id: UUID


@dataclass(frozen=True)
class KeepHere:
    """Ready steps that the caller (a worker applying its own results) takes itself in the same transaction: each
    step bound for ``queues`` for which ``claim()`` returns claim metadata (the claimer and a fresh claim token;
    None when the caller has no free slot left) is enqueued and claimed in one compare-and-swap (``enqueue`` then
    ``start``) and gets no message; the caller must write their messages as held by it
    (``store.steps.step_claim_kept_send``) before it commits."""

    queues: frozenset[str]
    claim: Callable[[], dict[str, Any] | None]


@dataclass(frozen=True)
class KeptStep:
    """A step enqueued and claimed under :class:`KeepHere`, with no message sent."""

    step_uuid: UUID
    queue: str
    correlation_id: UUID
    claim: dict[str, Any]


def goal_state(states: Iterable[StepState], isolated_errors: int = 0) -> TaskState:
    """Where a task belongs given its steps' states (failures first: a failed task schedules nothing new).

    ``isolated_errors`` of the failed steps are batch workers with failure strategy ``isolate``: they do not stop
    the rest of the task, which is blocked (awaiting an operator) only once nothing else can move.
    """
    states = list(states)
    errors = sum(1 for s in states if s is StepState.ERROR)
    if errors > isolated_errors:
        return TaskState.BLOCKED_BY_FAILURES
    if any(s in STEP_IN_FLIGHT for s in states):
        return TaskState.STEPS_IN_PROCESS
    if all(s in STEP_SATISFIES_DEPENDENCIES for s in states):
        return TaskState.COMPLETE
    if any(s is StepState.WAITING_FOR_RETRY for s in states):
        return TaskState.WAITING_FOR_RETRY
    if errors:
        return TaskState.BLOCKED_BY_FAILURES
    return TaskState.WAITING_FOR_DEPENDENCIES


def plan_task(
    *,
    task_uuid: UUID,
    state: TaskState,
    readiness: Sequence[dict[str, Any]],
    namespace: str,
    correlation_id: UUID,
    resume: bool = False,
    isolated: Collection[UUID] = (),
) -> TaskPlan | None:
    """Decide, from the task's readiness rows, what to enqueue and where the task goes; None when it rests.

    ``resume`` lets an operator's action revive a task that is blocked or in error. ``isolated`` names failed
    steps whose failure does not stop the others (batch workers with failure strategy ``isolate``).
    """
    if state in TASK_TERMINAL and not (resume and state is TaskState.ERROR):
        return None
    if state is TaskState.BLOCKED_BY_FAILURES and not resume:
        return None
    states = {row["workflow_step_uuid"]: StepState(row["current_state"]) for row in readiness}
    isolated_errors = sum(1 for step, s in states.items() if s is StepState.ERROR and step in isolated)
    enqueue: list[tuple[UUID, StepState]] = []
    if sum(1 for s in states.values() if s is StepState.ERROR) == isolated_errors:
        enqueue = [
            (row["workflow_step_uuid"], states[row["workflow_step_uuid"]])
            for row in readiness
            if row["ready_for_execution"]
        ]
        states.update({step: StepState.ENQUEUED for step, _ in enqueue})
    goal = goal_state(states.values(), isolated_errors)
    allowed = ORCHESTRATION_EVENTS | {TaskEvent.RESUME} if resume else ORCHESTRATION_EVENTS
    return TaskPlan(task_uuid, state, goal, task_route(state, goal, allowed), enqueue, namespace, correlation_id)


async def apply_plans(
    conn: Connection,
    transport: Transport,
    plans: Sequence[TaskPlan],
    metadata: dict[str, Any],
    *,
    ack_queue: str = STEP_RESULTS_QUEUE,
    ack_ids: Sequence[int] = (),
    keep: KeepHere | None = None,
) -> list[KeptStep]:
    """Carry out the plans (and acknowledge the messages they came from) through the transport, in one go;
    returns the steps enqueued without a message under ``keep``, which the caller claims."""
    enqueue: list[StepChange] = []
    deliveries: list[Delivery] = []
    kept: list[KeptStep] = []
    for plan in plans:
        queue = worker_queue(plan.namespace)
        for step, state in plan.enqueue:
            step_metadata = {**metadata, "correlation_id": plan.correlation_id}
            claim = keep.claim() if keep is not None and queue in keep.queues else None
            if claim is not None:
                kept.append(KeptStep(step, queue, plan.correlation_id, claim))
                enqueue.append(
                    StepChange(step, state, [*ENQUEUE_EVENTS[state], StepEvent.START], step_metadata | claim)
                )
            else:
                enqueue.append(StepChange(step, state, ENQUEUE_EVENTS[state], step_metadata))
                deliveries.append(Delivery(step, queue, channel(queue), plan.correlation_id))
    moves = [
        TaskChange(plan.task_uuid, plan.state, plan.events, {**metadata, "correlation_id": plan.correlation_id})
        for plan in plans
        if plan.events
    ]
    await transport.advance(
        conn, enqueue=enqueue, deliveries=deliveries, moves=moves, ack_queue=ack_queue, ack_ids=ack_ids
    )
    return kept


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
    """Evaluate one task now (the off-hot-path form: operator actions, the ready-task poller)."""
    readiness = await step_readiness(conn, task_uuid)
    failed = [row["workflow_step_uuid"] for row in readiness if row["current_state"] == StepState.ERROR]
    plan = plan_task(
        task_uuid=task_uuid,
        state=state,
        readiness=readiness,
        namespace=namespace,
        correlation_id=correlation_id,
        resume=resume,
        isolated=await step_isolated_many(conn, failed),
    )
    if plan is None:
        return Evaluation(state, [])
    await apply_plans(conn, transport, [plan], metadata)
    return Evaluation(plan.goal, [step for step, _ in plan.enqueue])
