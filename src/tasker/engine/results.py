"""Step results → complete, retry after a backoff, or permanent failure; then each task moves on.

A batch of result messages is applied in one transaction of five statements, whatever its size: lock the tasks
(results of tasks another orchestrator holds are handed back, not waited for);
read the steps and the tasks' states; write the step outcomes; read the tasks' readiness; enqueue newly ready
steps with their messages, move the tasks and delete the applied messages. A crash anywhere rolls all of it
back and the messages come back after their visibility timeout; a duplicate finds its step already past
``enqueued_for_orchestration`` and changes nothing. So a result is applied exactly once. When a batch fails, the
orchestrator applies its messages one by one, so one bad message cannot hold up the others.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasker.engine import dynamic
from tasker.engine.finalizer import KeepHere, KeptStep, TaskPlan, apply_plans, plan_task
from tasker.messaging.router import STEP_RESULTS_QUEUE, worker_queue
from tasker.messaging.transport import Message, Transport
from tasker.model.machines import StepEvent
from tasker.model.retry import backoff_seconds
from tasker.model.states import StepState, TaskState
from tasker.model.template import TaskTemplate
from tasker.store.db import Connection, Pending, pipelined_transaction
from tasker.store.dlq import dlq_create_entry, dlq_record_max_retries_exceeded
from tasker.store.steps import step_outcome_many_send, step_readiness_many_send
from tasker.store.tasks import task_existing_many, task_state_get, task_try_lock_many
from tasker.store.template_cache import TemplateCache
from tasker.store.transitions import StepChange, step_transition_many_send

AWAITING_ORCHESTRATION = frozenset(
    {StepState.ENQUEUED_FOR_ORCHESTRATION, StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION}
)
# Task states no result may change: only ``error`` (a stale task) can be resumed, so its steps' results are kept.
ENDED_FOR_GOOD = frozenset({TaskState.CANCELLED, TaskState.COMPLETE, TaskState.RESOLVED_MANUALLY})
# A result whose task another orchestrator holds comes back after this long (plus jitter), not at once.
BUSY_RETRY_SECONDS = 0.05


log = logging.getLogger("tasker.results")


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


def step_change(
    outcome: dict[str, Any], template: TaskTemplate, metadata: dict[str, Any]
) -> tuple[StepChange, StepState, float | None] | None:
    """How one stored result finishes its step, or None for a duplicate or late message."""
    state = StepState(outcome["state"])
    step_uuid = outcome["workflow_step_uuid"]
    if state in AWAITING_ORCHESTRATION and TaskState(outcome["task_state"]) in ENDED_FOR_GOOD:
        # the task ended (cancelled) while this result was on its way: it completes nothing and grows no DAG
        change = StepChange(step_uuid, state, [StepEvent.CANCEL], {**metadata, "reason": "the task has ended"})
        return change, StepState.CANCELLED, None
    if state is StepState.ENQUEUED_FOR_ORCHESTRATION:
        refused = dynamic.invalid_outcome(outcome, template)
        if refused is not None:  # a decision or batch outcome the template does not allow: fail for good
            results = dynamic.rejected_results(outcome, refused)
            change = StepChange(step_uuid, state, [StepEvent.FAIL], {**metadata, "error": refused}, results=results)
            return change, StepState.ERROR, None
        return StepChange(step_uuid, state, [StepEvent.COMPLETE], metadata), StepState.COMPLETE, None
    if state is StepState.ENQUEUED_AS_ERROR_FOR_ORCHESTRATION:
        delay = retry_decision(outcome, template)
        if delay is None:
            if dynamic.failure_strategy(outcome, template) == "continue_on_failure":
                # a failed batch worker counts as done for its convergence step; its failure stays on record
                events = [StepEvent.FAIL, StepEvent.RESOLVE_MANUALLY]
                change = StepChange(step_uuid, state, events, {**metadata, "failure_strategy": "continue_on_failure"})
                return change, StepState.RESOLVED_MANUALLY, None
            return StepChange(step_uuid, state, [StepEvent.FAIL], metadata), StepState.ERROR, None
        change = StepChange(
            step_uuid,
            state,
            [StepEvent.WAIT_FOR_RETRY],
            {**metadata, "retry_delay_ms": round(delay * 1000, 3)},
            backoff_seconds=math.ceil(delay),
        )
        return change, StepState.WAITING_FOR_RETRY, delay
    return None


def completion_of(step_uuid: UUID, metadata: dict[str, Any]) -> StepChange:
    """How a stored success completes its step when there is nothing to decide (a standard step): the change a
    worker's result store may apply itself (``Transport.store_results``), the same ``step_change`` makes."""
    return StepChange(step_uuid, StepState.ENQUEUED_FOR_ORCHESTRATION, [StepEvent.COMPLETE], metadata)


def completes_when_stored(template: TaskTemplate, template_step_name: str) -> bool:
    """Whether a success of this step completes it with nothing to decide: a standard step (a decision or batchable
    step's outcome is checked, and grows the DAG, in ``apply_stored``)."""
    return not dynamic.may_grow({"template_step_name": template_step_name}, template)


async def _record_blocked(
    conn: Connection, plans: Sequence[TaskPlan], readiness: dict[UUID, list[dict[str, Any]]], processor_uuid: UUID
) -> None:
    """A task that just blocked on failed steps gets a DLQ entry, so ``dlq list`` shows every piece of blocked work:
    ``max_retries_exceeded`` when a step used up its retries, else ``manual_dlq`` for a permanent failure (a step
    that was not retryable, or whose handler said the error cannot be retried)."""
    for plan in plans:
        if plan.goal is not TaskState.BLOCKED_BY_FAILURES or not plan.events:
            continue
        failed = [row for row in readiness.get(plan.task_uuid, []) if row["current_state"] == StepState.ERROR]
        exhausted = [r["workflow_step_uuid"] for r in failed if r["retryable"] and r["attempts"] >= r["max_attempts"]]
        if exhausted:
            await dlq_record_max_retries_exceeded(
                conn, plan.task_uuid, exhausted_step_uuids=exhausted, processor_uuid=processor_uuid
            )
        elif failed:
            await dlq_create_entry(
                conn,
                plan.task_uuid,
                reason="manual_dlq",
                original_state=TaskState.BLOCKED_BY_FAILURES,
                metadata={
                    "detection_method": "permanent_failure",
                    "failed_step_uuids": [str(r["workflow_step_uuid"]) for r in failed],
                    "processor_uuid": str(processor_uuid),
                },
            )


async def _lock_tasks(conn: Connection, transport: Transport, messages: Sequence[Message]) -> list[Message]:
    """Lock the batch's tasks and return the messages whose task is locked. Results of tasks another orchestrator
    holds are handed back for a moment later; results of tasks that do not exist are dropped (nothing to apply)."""
    task_of = {m.msg_id: UUID(m.body["task_uuid"]) for m in messages}
    locked = await task_try_lock_many(conn, list(task_of.values()))
    unlocked = {task_of[m.msg_id] for m in messages} - locked
    if unlocked:
        existing = await task_existing_many(conn, list(unlocked))
        busy = [m.msg_id for m in messages if task_of[m.msg_id] in existing]
        gone = [m.msg_id for m in messages if task_of[m.msg_id] in unlocked - existing]
        await transport.nack_many(
            conn, STEP_RESULTS_QUEUE, busy, delay_seconds=BUSY_RETRY_SECONDS * random.uniform(1.0, 2.0)
        )
        if gone:
            log.warning("dropping %d result message(s) of tasks that do not exist", len(gone))
            await transport.ack_many(conn, STEP_RESULTS_QUEUE, gone)
    return [m for m in messages if task_of[m.msg_id] in locked]


async def apply_results(
    conn: Connection,
    transport: Transport,
    templates: TemplateCache,
    messages: Sequence[Message],
    *,
    processor_uuid: UUID,
) -> list[Applied]:
    """Apply a batch of step-result messages in one transaction (see the module docstring), pipelined: the lock,
    then the outcomes, then the transitions with the readiness, then the advance and the COMMIT."""
    async with pipelined_transaction(conn):
        messages = await _lock_tasks(conn, transport, messages)
        batch = await apply_stored(
            conn,
            transport,
            templates,
            [UUID(m.body["step_uuid"]) for m in messages],
            processor_uuid=processor_uuid,
            ack_ids=[m.msg_id for m in messages],
        )
    return batch.applied


@dataclass(frozen=True)
class AppliedBatch:
    applied: list[Applied]
    enqueued: dict[str, int]  # worker queue → how many steps made ready were sent to it
    kept: list[KeptStep]  # steps made ready and enqueued without a message, for the caller to claim (KeepHere)

    @property
    def queues(self) -> set[str]:
        """The worker queues that got messages."""
        return set(self.enqueued)

    def merged(self, other: AppliedBatch) -> AppliedBatch:
        """This batch and ``other`` (applied in the same transaction) as one."""
        enqueued = Counter(self.enqueued) + Counter(other.enqueued)
        return AppliedBatch([*other.applied, *self.applied], dict(enqueued), [*self.kept, *other.kept])


async def apply_stored(
    conn: Connection,
    transport: Transport,
    templates: TemplateCache,
    step_uuids: Sequence[UUID],
    *,
    processor_uuid: UUID,
    ack_ids: Sequence[int] = (),
    outcomes: Pending[list[dict[str, Any]]] | None = None,
    keep: KeepHere | None = None,
    completed: frozenset[UUID] = frozenset(),
    readiness: Pending[dict[UUID, list[dict[str, Any]]]] | None = None,
) -> AppliedBatch:
    """Finish steps whose results are stored and move their tasks on: complete or retry or fail each step, grow
    the DAG, enqueue what became ready, move the tasks, acknowledge ``ack_ids`` on the results queue.

    The caller holds the tasks' locks in an open transaction. The orchestrator calls this for result messages; a
    worker calls it for the results it just stored when it could take their tasks' locks (the fast path), so
    both apply results with the same code and the same guarantees. ``outcomes``: the steps' outcome rows
    (``step_outcome_many``), already sent after the locks were taken, when the caller pipelined them. ``keep``:
    steps made ready that the caller claims in this transaction (a worker's continuation), returned in ``kept``.
    ``completed``: steps the caller's result store completed already (a standard step's success,
    ``completion_of``); they are planned for, not changed again. ``readiness``: the tasks' readiness, sent after
    that store, used when nothing else here changes a step (otherwise it is read again after the changes).

    Statements that do not need each other's answers are sent together, so in pipeline mode this costs two round
    trips (outcomes; transitions with readiness) and the advance, whose answer is not read (its error raises when
    the caller's transaction ends), plus one when a decision or batch step grows the DAG and one when a failed step
    may be isolated."""
    metadata: dict[str, Any] = {"processor_uuid": processor_uuid}
    rows = await (outcomes or await step_outcome_many_send(conn, step_uuids))()
    decided: list[tuple[dict[str, Any], StepChange, StepState, float | None]] = []
    namespaces: dict[UUID, str] = {}
    grows = False
    for outcome in rows:
        template = await templates.get(conn, outcome["named_task_uuid"])
        step_metadata = {**metadata, "correlation_id": outcome["correlation_id"]}
        if outcome["workflow_step_uuid"] in completed:
            finished: tuple[StepChange, StepState, float | None] | None = (
                completion_of(outcome["workflow_step_uuid"], step_metadata),
                StepState.COMPLETE,
                None,
            )
        else:
            finished = step_change(outcome, template, step_metadata)
        if finished is not None:
            decided.append((outcome, *finished))
            namespaces[outcome["task_uuid"]] = template.namespace_name
            grows |= finished[1] is StepState.COMPLETE and dynamic.may_grow(outcome, template)
    changes = [change for _, change, _, _ in decided if change.step_uuid not in completed]
    sent_won = await step_transition_many_send(conn, changes)
    if readiness is not None and not changes and not grows:
        sent_readiness: Pending[dict[UUID, list[dict[str, Any]]]] | None = readiness
    else:
        sent_readiness = None if grows else await step_readiness_many_send(conn, list(namespaces))
    won = set(await sent_won()) | set(completed)
    for outcome, step, new_state, _ in decided:
        if step.step_uuid in won and new_state is StepState.COMPLETE:
            await dynamic.after_step_completed(conn, outcome, await templates.get(conn, outcome["named_task_uuid"]))
    found = await (sent_readiness or await step_readiness_many_send(conn, list(namespaces)))()
    if not found.keys() >= namespaces.keys():  # the readiness sent ahead was for other tasks
        found = await (await step_readiness_many_send(conn, list(namespaces)))()
    readiness_of = {task: found[task] for task in namespaces}
    isolated = await dynamic.isolated_steps(conn, [row for rows in readiness_of.values() for row in rows])
    states = {o["task_uuid"]: TaskState(o["task_state"]) for o in rows}
    correlations = {o["task_uuid"]: o["correlation_id"] for o in rows}
    plans = [
        plan
        for task_uuid, task_rows in readiness_of.items()
        if (
            plan := plan_task(
                task_uuid=task_uuid,
                state=states[task_uuid],
                readiness=task_rows,
                namespace=namespaces[task_uuid],
                correlation_id=correlations[task_uuid],
                isolated=isolated,
            )
        )
        is not None
    ]
    kept = await apply_plans(conn, transport, plans, metadata, ack_queue=STEP_RESULTS_QUEUE, ack_ids=ack_ids, keep=keep)
    await _record_blocked(conn, plans, readiness_of, processor_uuid)
    goals = {plan.task_uuid: plan.goal for plan in plans}
    applied = [
        Applied(step.step_uuid, new_state, goals.get(outcome["task_uuid"]), delay)
        for outcome, step, new_state, delay in decided
        if step.step_uuid in won
    ]
    claimed_here = {step.step_uuid for step in kept}
    sent = Counter(
        worker_queue(plan.namespace) for plan in plans for step, _ in plan.enqueue if step not in claimed_here
    )
    return AppliedBatch(applied, dict(sent), kept)


async def dead_letter_result(
    conn: Connection, transport: Transport, message: Message, *, error: str, failures: int
) -> None:
    """Take a result message that keeps failing out of the queue (to its archive table) and open a DLQ entry for
    its task, in one transaction, so an operator sees it (``dlq list``) instead of it being retried forever."""
    log.error(
        "step result %s failed %d times; moved to the dead-letter archive (pgmq.a_%s)",
        message.msg_id,
        failures,
        STEP_RESULTS_QUEUE,
    )
    async with conn.transaction():
        await transport.dead_letter_many(conn, STEP_RESULTS_QUEUE, [message.msg_id])
        task_uuid = _task_uuid(message)
        if task_uuid is None or not await task_existing_many(conn, [task_uuid]):
            return
        state = await task_state_get(conn, task_uuid)
        await dlq_create_entry(
            conn,
            task_uuid,
            reason="manual_dlq",
            original_state=state,
            metadata={
                "detection_method": "poison_result_message",
                "queue": STEP_RESULTS_QUEUE,
                "archived_msg_id": message.msg_id,
                "step_uuid": str(message.body.get("step_uuid")),
                "failures": failures,
                "error": error[:2000],
            },
        )


def _task_uuid(message: Message) -> UUID | None:
    try:
        return UUID(str(message.body["task_uuid"]))
    except (KeyError, ValueError):
        return None
