"""Step reads used on the hot path: readiness, result processing, claiming and handler context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from tasker.model.machines import StepEvent, task_route
from tasker.model.states import StepState, TaskState
from tasker.store.db import BoolArray, Connection, Int8Array, JsonbArray, Pending, TextArray, UuidArray
from tasker.store.queries import Q, on_table
from tasker.store.transitions import (
    StepAudit,
    StepChange,
    TaskChange,
    json_safe,
    step_change_params,
    task_change_params,
)


async def step_readiness(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["step_readiness"], {"task_uuid": task_uuid})).fetchall()


async def step_outcome_many(conn: Connection, step_uuids: Sequence[UUID]) -> list[dict[str, Any]]:
    return await (await step_outcome_many_send(conn, step_uuids))()


async def step_outcome_many_send(conn: Connection, step_uuids: Sequence[UUID]) -> Pending[list[dict[str, Any]]]:
    """:func:`step_outcome_many`, sent now and read later (see ``store.db.Pending``)."""
    cursor = await conn.execute(Q["step_outcome_many"], {"step_uuids": UuidArray(step_uuids)})
    return cursor.fetchall


# The compare-and-swap constants of a first claim (enqueued → in_progress), from the code every transition uses.
_FIRST_CLAIM = step_change_params([StepChange(UUID(int=0), StepState.ENQUEUED, [StepEvent.START], {})])


async def step_claim_from_queue(
    conn: Connection,
    queue: str,
    *,
    max_messages: int,
    visibility_seconds: int,
    metadata: dict[str, str],
) -> list[dict[str, Any]]:
    """Read up to ``max_messages`` from a PGMQ queue and claim the first deliveries' steps, in one statement.

    One row per message taken (oldest first): ``claimed`` rows carry the handler context (as
    :func:`step_claim_many`) and their ``claim_token`` (random, drawn by the server: a claim that a database crash
    rolled back is never issued again); the others (redeliveries, lost races) only the message."""
    statement = on_table("step_claim_from_queue", "queue_table", f"q_{queue}")
    params: dict[str, Any] = {
        "qty": max_messages,
        "vt": visibility_seconds,
        "metadata": Jsonb(metadata),
        **{
            name: _FIRST_CLAIM[name][0]
            for name in ("in_process", "processed", "stamp_processed_at", "count_attempt", "reset_attempts")
        },
        "path": _FIRST_CLAIM["paths"][0],
    }
    return await (await conn.execute(statement, params)).fetchall()


async def step_claim_view_many(conn: Connection, step_uuids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    rows = await (await conn.execute(Q["step_claim_view_many"], {"step_uuids": list(step_uuids)})).fetchall()
    return {row["workflow_step_uuid"]: row for row in rows}


async def step_claim_many(conn: Connection, claims: Sequence[StepChange]) -> list[dict[str, Any]]:
    """Claim steps and read their handler context in one statement; rows only for the claims that won."""
    if not claims:
        return []
    return await (await conn.execute(Q["step_claim_many"], step_change_params(claims))).fetchall()


async def step_claim_kept_send(
    conn: Connection,
    queue: str,
    kept: Sequence[tuple[UUID, UUID, str]],
    *,
    visibility_seconds: int,
    channel: str,
) -> Pending[list[dict[str, Any]]]:
    """Write the held messages of steps this transaction enqueued and claimed without one (``kept``: step,
    correlation id, claim token; see ``engine.finalizer.KeepHere``) and read their handler context, in one
    statement, sent now and read later. Rows are shaped like :func:`step_claim_from_queue`'s."""
    statement = on_table("step_claim_kept", "queue_table", f"q_{queue}")
    params = {
        "step_uuids": UuidArray(step for step, _, _ in kept),
        "correlation_ids": UuidArray(correlation for _, correlation, _ in kept),
        "claim_tokens": TextArray(token for _, _, token in kept),
        "vt": visibility_seconds,
        "channel": channel,
    }
    cursor = await conn.execute(statement, params)
    return cursor.fetchall


@dataclass(frozen=True)
class HeldMessage:
    """The step message a worker holds for a step whose result it stores."""

    step_uuid: UUID
    queue: str
    msg_id: int


@dataclass(frozen=True)
class Continuation:
    """What a result store needs to move plain tasks on itself (``step_result_store_many``, migration 0018): the
    caller's namespaces with their queue and wake-up channel, one fresh claim token per step it can take now, the
    claimer's metadata, the enqueues' metadata and the lease of a claimed step's message."""

    queues: dict[str, tuple[str, str]]  # namespace → (queue, channel)
    claim_tokens: list[str]
    claim_metadata: dict[str, Any]
    enqueue_metadata: dict[str, Any]
    lease_seconds: int


@dataclass(frozen=True)
class NextStep:
    """A step a result store enqueued (the continuation): claimed for the caller under ``claim_token`` (its held
    message is the caller's to write: :func:`step_claim_by_token_send`), or (``claim_token`` None) sent to ``queue``
    with a visible message."""

    step_uuid: UUID
    queue: str
    claim_token: str | None


@dataclass(frozen=True)
class StoredResults:
    stored: set[UUID]  # steps whose results were stored
    here: set[UUID]  # of those, the steps whose task this transaction locked: announced to no one, apply them here
    completed: set[UUID] = field(default_factory=set)  # of those, the steps the store completed as well
    planned: set[UUID] = field(default_factory=set)  # of those, the steps whose task the store moved on too
    finished: set[UUID] = field(default_factory=set)  # of those, the steps whose task the store moved to complete
    next: list[NextStep] = field(default_factory=list)  # the steps the store enqueued for those tasks


async def step_result_store_many(
    conn: Connection,
    results: Sequence[StepChange],
    held: Sequence[HeldMessage],
    *,
    results_queue: str,
    results_channel: str,
    lock_tasks: Sequence[UUID | None] = (),
    completions: Sequence[StepChange | None] = (),
    continuation: Continuation | None = None,
    moved_on_only: bool = False,
) -> Pending[StoredResults]:
    """Store results, announce them on ``results_queue`` and delete their step messages, in one statement (sent
    now, read by awaiting the answer: see ``store.db.Pending``).

    ``held`` lists the messages in the same order as ``results``. ``lock_tasks`` (same order; None for a result
    that must go to an orchestrator) names tasks to lock if free: those results are stored but not announced, and
    the caller, in the same open transaction, applies them itself. ``completions`` (same order; None for none): the
    change (``enqueued_for_orchestration → complete``) that finishes a result's step once it is stored here, applied
    by the same statement when the task was locked and has not ended (``StoredResults.completed``).
    ``continuation``: move the tasks of completed steps on as well when what comes next is plain
    (``StoredResults.planned``, ``StoredResults.next``; see the migration). ``moved_on_only``: the caller commits
    before it reads the answer, so a result applied here whose task the store did not move on fails the statement
    (:func:`results_need_planning`) and, with it, the caller's whole implicit transaction."""
    if not results:
        return nothing_stored
    params = result_store_params(results, lock_tasks)
    params["queues"] = TextArray(h.queue for h in held)
    params["msg_ids"] = Int8Array(h.msg_id for h in held)
    params["results_queue"] = results_queue
    params["results_channel"] = results_channel
    params |= completion_params(list(completions) or [None] * len(results), results)
    params |= continuation_params(continuation)
    statement = _STORE_MOVED_ON if moved_on_only else Q["step_result_store_many"]
    return stored_results_of(await conn.execute(statement, params))


_STORE_MOVED_ON = Q["step_result_store_moved_on"].replace("{store}", Q["step_result_store_many"].rstrip().rstrip(";"))
# The SQLSTATE of the guard of step_result_store_moved_on (migration 0019).
RESULTS_NEED_PLANNING = "TK001"


def results_need_planning(exc: BaseException) -> bool:
    """Whether ``exc`` is the guard's refusal: a store sent with ``moved_on_only`` applied a result here that its
    caller would have to plan in the same transaction. The statement and its whole flight rolled back."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate == RESULTS_NEED_PLANNING


# The continuation's compare-and-swap constants: a ready step enqueued, or enqueued and claimed at once.
_ENQUEUE = step_change_params([StepChange(UUID(int=0), StepState.PENDING, [StepEvent.ENQUEUE])])
_ENQUEUE_AND_CLAIM = step_change_params(
    [StepChange(UUID(int=0), StepState.PENDING, [StepEvent.ENQUEUE, StepEvent.START])]
)
# ... and a task's route when its last step completes (engine.finalizer.plan_task's, with orchestration events).
_FINISH = task_change_params(
    [TaskChange(UUID(int=0), TaskState.STEPS_IN_PROCESS, task_route(TaskState.STEPS_IN_PROCESS, TaskState.COMPLETE))]
)


CONTINUATION_PARAMS = (
    "plan_namespaces",
    "plan_queues",
    "plan_channels",
    "claim_tokens",
    "claim_metadata",
    "enqueue_metadata",
    "lease_seconds",
    "enqueue_path",
    "enqueue_effects",
    "keep_path",
    "keep_effects",
    "finish_path",
)


def continuation_params(continuation: Continuation | None) -> dict[str, Any]:
    """The continuation's parameters of ``step_result_store_many``; all NULL without one (nothing is planned)."""
    if continuation is None:
        return dict.fromkeys(CONTINUATION_PARAMS)
    namespaces = list(continuation.queues)
    return {
        "plan_namespaces": TextArray(namespaces),
        "plan_queues": TextArray(continuation.queues[n][0] for n in namespaces),
        "plan_channels": TextArray(continuation.queues[n][1] for n in namespaces),
        "claim_tokens": TextArray(continuation.claim_tokens),
        "claim_metadata": Jsonb(json_safe(continuation.claim_metadata)),
        "enqueue_metadata": Jsonb(json_safe(continuation.enqueue_metadata)),
        "lease_seconds": continuation.lease_seconds,
        "enqueue_path": _ENQUEUE["paths"][0],
        "enqueue_effects": BoolArray(_ENQUEUE[name][0] for name in EFFECT_COLUMNS),
        "keep_path": _ENQUEUE_AND_CLAIM["paths"][0],
        "keep_effects": BoolArray(_ENQUEUE_AND_CLAIM[name][0] for name in EFFECT_COLUMNS),
        "finish_path": _FINISH["paths"][0],
    }


async def step_claim_by_token_send(
    conn: Connection, queue: str, task_uuids: Sequence[UUID], claim_tokens: Sequence[str], *, visibility_seconds: int
) -> Pending[list[dict[str, Any]]]:
    """Write the held messages of the steps of these tasks that a result store claimed under these tokens (its
    continuation) and read their handler context, in one statement on ``queue``'s table, sent now and read later;
    rows are shaped like :func:`step_claim_from_queue`'s."""
    params = {"task_uuids": UuidArray(task_uuids), "claim_tokens": TextArray(claim_tokens), "vt": visibility_seconds}
    return (await conn.execute(on_table("step_claim_by_token", "queue_table", f"q_{queue}"), params)).fetchall


def completion_params(
    completions: Sequence[StepChange | None], results: Sequence[StepChange] | None = None
) -> dict[str, Any]:
    """The completions of ``step_result_store_many``: a flag and the metadata per result, the completion's hop and
    the effects of the store and the completion together (a stored success, then ``complete``), all from the code
    every transition uses. Only a success stored from ``in_progress`` can be completed with its store."""
    chosen = [change for change in completions if change is not None]
    if any(change.from_state is not StepState.ENQUEUED_FOR_ORCHESTRATION for change in chosen) or any(
        change.events != [StepEvent.COMPLETE] for change in chosen
    ):
        raise ValueError("a stored result can only be completed from enqueued_for_orchestration")
    stored = [] if results is None else [r for r, c in zip(results, completions, strict=True) if c is not None]
    if any(
        r.from_state is not StepState.IN_PROGRESS or r.events != [StepEvent.ENQUEUE_FOR_ORCHESTRATION] for r in stored
    ):
        raise ValueError("only a success stored from in_progress can be completed with its store")
    metadata = iter(step_change_params(chosen)["metadata"])
    return {
        "complete": BoolArray(change is not None for change in completions),
        "complete_metadata": JsonbArray(None if change is None else next(metadata) for change in completions),
        "complete_path": _COMPLETION["paths"][0],
        "complete_effects": BoolArray(_STORED_AND_COMPLETED[name][0] for name in EFFECT_COLUMNS),
    }


# The completion's hop, and the effects of a success stored and completed in one compare-and-swap.
_COMPLETION = step_change_params([StepChange(UUID(int=0), StepState.ENQUEUED_FOR_ORCHESTRATION, [StepEvent.COMPLETE])])
_STORED_AND_COMPLETED = step_change_params(
    [StepChange(UUID(int=0), StepState.IN_PROGRESS, [StepEvent.ENQUEUE_FOR_ORCHESTRATION, StepEvent.COMPLETE])]
)
# The columns of a change's effects, in the order the store function takes them as one array.
EFFECT_COLUMNS = ("in_process", "processed", "stamp_processed_at", "count_attempt", "reset_attempts")


def result_store_params(results: Sequence[StepChange], lock_tasks: Sequence[UUID | None]) -> dict[str, Any]:
    """The parameters every transport's result store shares: the fenced changes and the tasks it may lock."""
    params: dict[str, Any] = step_change_params(results)
    locks = list(lock_tasks) or [None] * len(results)
    params["lock_tasks"] = UuidArray(locks)  # one per result (None: not to be applied by the caller)
    return params


def stored_results_of(cursor: AsyncCursor[dict[str, Any]]) -> Pending[StoredResults]:
    """The answer of a result store statement (rows of ``workflow_step_uuid``, ``here`` and, from the PGMQ
    store, ``completed``), read when awaited."""

    async def read() -> StoredResults:
        rows = await cursor.fetchall()
        results = [row for row in rows if row["workflow_step_uuid"] is not None]
        return StoredResults(
            {row["workflow_step_uuid"] for row in results},
            {row["workflow_step_uuid"] for row in results if row["here"]},
            {row["workflow_step_uuid"] for row in results if row.get("completed")},
            {row["workflow_step_uuid"] for row in results if row.get("planned")},
            {row["workflow_step_uuid"] for row in results if row.get("finished")},
            [
                NextStep(row["next_step_uuid"], row["next_queue"], row["next_claim_token"])
                for row in rows
                if row.get("next_step_uuid") is not None
            ],
        )

    return read


async def nothing_stored() -> StoredResults:
    return StoredResults(set(), set())


async def task_ready_many(conn: Connection, limit: int) -> list[UUID]:
    rows = await (await conn.execute(Q["task_ready_many"], {"limit": limit})).fetchall()
    return [row["task_uuid"] for row in rows]


async def step_readiness_many(conn: Connection, task_uuids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """Readiness of several tasks' steps, grouped by task."""
    return await (await step_readiness_many_send(conn, task_uuids))()


async def step_readiness_many_send(
    conn: Connection, task_uuids: Sequence[UUID]
) -> Pending[dict[UUID, list[dict[str, Any]]]]:
    """:func:`step_readiness_many`, sent now and read later (see ``store.db.Pending``)."""
    cursor = await conn.execute(Q["step_readiness_many"], {"task_uuids": UuidArray(task_uuids)})

    async def read() -> dict[UUID, list[dict[str, Any]]]:
        grouped: dict[UUID, list[dict[str, Any]]] = {t: [] for t in task_uuids}
        for row in await cursor.fetchall():
            grouped.setdefault(row["task_uuid"], []).append(row)
        return grouped

    return read


@dataclass(frozen=True)
class LateResult:
    """A result whose compare-and-swap lost: its audit row, and the token of the claim that produced it."""

    step_uuid: UUID
    audit: StepAudit
    claim_token: str | None


@dataclass(frozen=True)
class LateRecorded:
    final: set[UUID]  # steps in a final state: the result is on record, the message may be acknowledged
    already_stored: set[UUID]  # results this claim had stored already (an earlier try went through)


async def step_result_late_record_many(conn: Connection, late: Sequence[LateResult]) -> LateRecorded:
    """Record results that came too late (their step is final now) in the audit trail, without applying them."""
    if not late:
        return LateRecorded(set(), set())
    params = {
        "step_uuids": [r.step_uuid for r in late],
        "success": [r.audit.success for r in late],
        "worker_uuids": [r.audit.worker_uuid for r in late],
        "correlation_ids": [r.audit.correlation_id for r in late],
        "execution_ms": [r.audit.execution_time_ms for r in late],
        "claim_tokens": [r.claim_token for r in late],
    }
    rows = await (await conn.execute(Q["step_result_late_record_many"], params)).fetchall()
    return LateRecorded(
        {row["workflow_step_uuid"] for row in rows if not row["already_stored"]},
        {row["workflow_step_uuid"] for row in rows if row["already_stored"]},
    )


async def step_checkpoint_save_claimed(
    conn: Connection, step_uuid: UUID, attempts: int, claim_token: str, checkpoint: dict[str, Any]
) -> dict[str, Any] | None:
    """Store a running step's checkpoint (history appended in SQL) for the claim named by ``claim_token``; None when
    that claim no longer holds the step."""
    params = {"step_uuid": step_uuid, "attempts": attempts, "claim_token": claim_token, "checkpoint": Jsonb(checkpoint)}
    row = await (await conn.execute(Q["step_checkpoint_save_claimed"], params)).fetchone()
    return dict(row["checkpoint"]) if row else None
