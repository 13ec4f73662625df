"""What operators do to tasks: act on a step (reset for retry, resolve or complete manually) and cancel.

Unlike tasker-core, a step action *resumes* its task: the task leaves ``blocked_by_failures`` (or an ``error``
reached through the dead-letter queue), every completed result is kept, and the remaining steps run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from tasker.engine.finalizer import evaluate_task
from tasker.errors import InvalidTransitionError, LostRaceError, NotFoundError
from tasker.messaging.router import TASK_CANCELLED_CHANNEL
from tasker.messaging.transport import Transport
from tasker.model.machines import StepEvent, TaskEvent
from tasker.model.states import STEP_TERMINAL, TASK_TERMINAL, StepState, TaskState
from tasker.store.db import Connection
from tasker.store.dlq import dlq_entries_for_task, dlq_update
from tasker.store.tasks import task_cancelled_notify, task_get, task_lock, task_steps
from tasker.store.transitions import (
    StepChange,
    StepTransitioned,
    TaskChange,
    step_transition,
    step_transition_many,
    task_transition,
)

StepAction = Literal["reset_for_retry", "resolve_manually", "complete_manually"]
_EVENTS: dict[str, StepEvent] = {
    "reset_for_retry": StepEvent.RESET_FOR_RETRY,
    "resolve_manually": StepEvent.RESOLVE_MANUALLY,
    "complete_manually": StepEvent.COMPLETE_MANUALLY,
}


@dataclass(frozen=True)
class ActionOutcome:
    step_uuid: UUID
    step_state: StepState
    task_state: TaskState


async def step_action(
    conn: Connection,
    transport: Transport,
    *,
    task_uuid: UUID,
    step_uuid: UUID,
    action: StepAction,
    actor: str,
    reason: str | None = None,
    results: Any = None,
) -> ActionOutcome:
    """Apply an operator's action to one step and resume the task, in one transaction."""
    async with conn.transaction():
        task = await task_lock(conn, task_uuid)
        metadata = {"actor": actor, "reason": reason, "action": action}
        stored = None
        if action == "complete_manually":
            stored = {
                "success": True,
                "status": "completed",
                "result": results,
                "metadata": {"manual": True, **metadata},
            }

        def change(state: StepState) -> StepChange:
            if action == "reset_for_retry" and state is not StepState.ERROR:
                raise InvalidTransitionError(f"only a step in 'error' can be reset for retry; this one is '{state}'")
            return StepChange(step_uuid, state, [_EVENTS[action]], metadata, results=stored)

        outcome = await _step_change_retrying(conn, task_uuid, step_uuid, change)
        full = await task_get(conn, task_uuid)
        evaluation = await evaluate_task(
            conn,
            transport,
            task_uuid=task_uuid,
            state=TaskState(task["state"]),
            namespace=full["namespace_name"],
            correlation_id=task["correlation_id"],
            metadata=metadata,
            resume=True,
        )
        await _resolve_dlq_entry(conn, task_uuid, actor=actor, action=action, steps=[step_uuid], reason=reason)
    return ActionOutcome(step_uuid, outcome.state, evaluation.state)


async def _resolve_dlq_entry(
    conn: Connection, task_uuid: UUID, *, actor: str, action: str, steps: list[UUID], reason: str | None
) -> None:
    """The task's pending DLQ investigation, if any, records who did what and is closed: the task resumed."""
    for entry in await dlq_entries_for_task(conn, task_uuid):
        if entry["resolution_status"] != "pending":
            continue
        note = f"{action} of step(s) {', '.join(str(s) for s in steps)} by {actor}" + (f": {reason}" if reason else "")
        await dlq_update(
            conn,
            entry["dlq_entry_uuid"],
            resolution_status="manually_resolved",
            resolved_by=actor,
            resolution_notes=note,
            metadata={
                "operator_action": {
                    "actor": actor,
                    "action": action,
                    "steps": [str(s) for s in steps],
                    "reason": reason,
                }
            },
        )


async def retry_failed_steps(
    conn: Connection, transport: Transport, *, task_uuid: UUID, actor: str, reason: str | None = None
) -> list[UUID]:
    """Reset every failed step of a task for retry and resume it, in one transaction; returns the steps reset.

    A task in ``error`` with no failed step (the staleness sweep moved it there while it waited or ran) is resumed
    as it is: its remaining steps run, and its pending DLQ entry is closed with who did it.
    """
    async with conn.transaction():
        task = await task_lock(conn, task_uuid)
        failed = [s["workflow_step_uuid"] for s in await task_steps(conn, task_uuid) if s["state"] == StepState.ERROR]
        if not failed and task["state"] != TaskState.ERROR:
            raise InvalidTransitionError(f"task {task_uuid} has no failed steps to retry")
        metadata = {"actor": actor, "reason": reason, "action": "reset_for_retry" if failed else "resume"}
        await step_transition_many(
            conn, [StepChange(step, StepState.ERROR, [StepEvent.RESET_FOR_RETRY], metadata) for step in failed]
        )
        full = await task_get(conn, task_uuid)
        await evaluate_task(
            conn,
            transport,
            task_uuid=task_uuid,
            state=TaskState(task["state"]),
            namespace=full["namespace_name"],
            correlation_id=task["correlation_id"],
            metadata=metadata,
            resume=True,
        )
        action = "reset_for_retry" if failed else "resume"
        await _resolve_dlq_entry(conn, task_uuid, actor=actor, action=action, steps=failed, reason=reason)
    return failed


async def cancel_task(conn: Connection, *, task_uuid: UUID, actor: str, reason: str | None = None) -> TaskState:
    """Cancel every step that has not finished, then the task; refused when the task has already ended."""
    async with conn.transaction():
        task = await task_lock(conn, task_uuid)
        state = TaskState(task["state"])
        if state in TASK_TERMINAL:
            raise InvalidTransitionError(f"task {task_uuid} has already ended ('{state}') and cannot be cancelled")
        metadata = {"actor": actor, "reason": reason}
        await _cancel_open_steps(conn, task_uuid, metadata)
        cancelled = await task_transition(conn, TaskChange(task_uuid, state, [TaskEvent.CANCEL], metadata))
        await task_cancelled_notify(conn, task_uuid, TASK_CANCELLED_CHANNEL)
        return cancelled


# A worker moves a step without the task lock (claim, stored result), so a step change under the task lock can
# lose its compare-and-swap to it; the operator's change is then retried on the step's new state.
CAS_ROUNDS = 20


async def _cancel_open_steps(conn: Connection, task_uuid: UUID, metadata: dict[str, Any]) -> None:
    """Cancel every step that has not finished, retrying those a worker moved meanwhile."""
    for _ in range(CAS_ROUNDS):
        open_steps = [s for s in await task_steps(conn, task_uuid) if StepState(s["state"]) not in STEP_TERMINAL]
        if not open_steps:
            return
        await step_transition_many(
            conn,
            [
                StepChange(s["workflow_step_uuid"], StepState(s["state"]), [StepEvent.CANCEL], metadata)
                for s in open_steps
            ],
        )
    raise LostRaceError(f"task {task_uuid}: its steps kept moving while being cancelled; try again")


async def _step_change_retrying(
    conn: Connection, task_uuid: UUID, step_uuid: UUID, change: Callable[[StepState], StepChange]
) -> StepTransitioned:
    """One operator change of a step, retried on the step's new state when a worker moved it meanwhile."""
    for _ in range(CAS_ROUNDS):
        steps = {s["workflow_step_uuid"]: s for s in await task_steps(conn, task_uuid)}
        step = steps.get(step_uuid)
        if step is None:
            raise NotFoundError(f"task {task_uuid} has no step {step_uuid}")
        try:
            return await step_transition(conn, change(StepState(step["state"])))
        except LostRaceError:
            continue
    raise LostRaceError(f"step {step_uuid} kept moving while being changed; try again")
