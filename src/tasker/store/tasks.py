"""Tasks: creation in one statement, lookups, and the per-task lock that orders orchestration decisions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from tasker.errors import DuplicateTaskError, NotFoundError
from tasker.store.db import Connection, Int8Array, TextArray, UuidArray
from tasker.store.queries import Q
from tasker.store.transitions import StepChange, TaskChange, step_change_params, task_change_params


@dataclass(frozen=True)
class NewStep:
    step_uuid: UUID
    name: str
    retryable: bool
    max_attempts: int
    inputs: dict[str, Any] | None


@dataclass(frozen=True)
class NewTask:
    task_uuid: UUID
    named_task_uuid: UUID
    identity_hash: str
    correlation_id: UUID
    context: dict[str, Any]
    steps: list[NewStep]
    edges: list[tuple[UUID, UUID]]
    initiator: str | None = None
    source_system: str | None = None
    reason: str | None = None
    tags: list[str] | None = None
    priority: int = 0
    parent_correlation_id: UUID | None = None
    processor_uuid: UUID | None = None
    requested_at: datetime | None = None  # UTC; None: now
    request_details: dict[str, Any] | None = None  # kept on the first transition (options, a reason's full text)
    template_digest: str | None = None  # the template's digest as the caller read it (checked by task_create)


@dataclass(frozen=True)
class TaskStart:
    """How a new task starts, written with it (``task_create``): the task's move out of ``pending`` and the root
    steps it enqueues, with the move's metadata on their ``enqueued`` rows too; the same rows the transition
    functions would write in a later statement (``move`` is encoded as they encode it)."""

    move: TaskChange
    enqueued: list[UUID]


def _first_transition_metadata(task: NewTask) -> dict[str, Any]:
    metadata: dict[str, Any] = {"event": "initial", "from_service": "task_initializer"}
    if task.request_details:
        metadata["request"] = task.request_details
    return metadata


def _create_params(task: NewTask, start: TaskStart | None) -> dict[str, Any]:
    move = task_change_params([start.move]) if start else {"paths": [Jsonb([])], "metadata": [Jsonb({})]}
    return {
        "task_route": move["paths"][0],
        "enqueued": list(start.enqueued) if start else [],
        "start_metadata": move["metadata"][0],
        "task_uuid": task.task_uuid,
        "named_task_uuid": task.named_task_uuid,
        "initiator": task.initiator,
        "source_system": task.source_system,
        "reason": task.reason,
        "tags": Jsonb(task.tags or []),
        "context": Jsonb(task.context),
        "identity_hash": task.identity_hash,
        "priority": task.priority,
        "correlation_id": task.correlation_id,
        "parent_correlation_id": task.parent_correlation_id,
        "step_uuids": [s.step_uuid for s in task.steps],
        "step_names": [s.name for s in task.steps],
        "retryable": [s.retryable for s in task.steps],
        "max_attempts": [s.max_attempts for s in task.steps],
        "inputs": [Jsonb(s.inputs) if s.inputs else None for s in task.steps],
        "edge_from": [e[0] for e in task.edges],
        "edge_to": [e[1] for e in task.edges],
        "task_metadata": Jsonb(_first_transition_metadata(task)),
        "requested_at": task.requested_at,
        "step_metadata": Jsonb({"event": "initial"}),
        "processor_uuid": task.processor_uuid,
        "template_digest": task.template_digest,
    }


class TemplateChangedError(Exception):
    """The template a task was built from is no longer the registered one (``NewTask.template_digest``)."""


async def task_create(conn: Connection, task: NewTask, start: TaskStart | None = None) -> None:
    """Insert the task, its steps, edges and first transitions, and how it starts (``start``: its route and the
    enqueued root steps; their messages are the caller's to send); a taken identity raises DuplicateTaskError, a
    template re-registered since ``task.template_digest`` was read raises TemplateChangedError (nothing written)."""
    try:
        row = await (await conn.execute(Q["task_create"], _create_params(task, start))).fetchone()
    except UniqueViolation as exc:
        if "identity_hash" in str(exc):
            raise DuplicateTaskError(identity_hash=task.identity_hash) from exc
        raise
    if row is None or not row["task_created"]:
        raise TemplateChangedError(f"the template of named task {task.named_task_uuid} changed: read it again")
    created = row["steps_created"]
    if created != len(task.steps):
        missing = len(task.steps) - created
        raise NotFoundError(f"{missing} step(s) have no named_steps row: register the template first")


async def task_find_by_identity(conn: Connection, identity_hash: str) -> UUID | None:
    row = await (await conn.execute(Q["task_find_by_identity"], {"identity_hash": identity_hash})).fetchone()
    return row["task_uuid"] if row else None


async def task_lock(conn: Connection, task_uuid: UUID) -> dict[str, Any]:
    """Lock the task row for the rest of the transaction; returns its state as committed before the lock."""
    if await (await conn.execute(Q["task_lock"], {"task_uuid": task_uuid})).fetchone() is None:
        raise NotFoundError(f"task {task_uuid} does not exist")
    row = await (await conn.execute(Q["task_state_get"], {"task_uuid": task_uuid})).fetchone()
    assert row is not None
    return row


async def task_get(conn: Connection, task_uuid: UUID) -> dict[str, Any]:
    row = await (await conn.execute(Q["task_get"], {"task_uuid": task_uuid})).fetchone()
    if row is None:
        raise NotFoundError(f"task {task_uuid} does not exist")
    return row


async def task_steps(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["task_steps"], {"task_uuid": task_uuid})).fetchall()


async def task_edges(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["task_edges"], {"task_uuid": task_uuid})).fetchall()


async def task_try_lock_many(conn: Connection, task_uuids: Sequence[UUID]) -> set[UUID]:
    """Lock, for the transaction, those of the tasks that no other transaction holds; returns the ones locked."""
    rows = await (await conn.execute(Q["task_try_lock_many"], {"task_uuids": list(set(task_uuids))})).fetchall()
    return {row["task_uuid"] for row in rows}


async def task_state_get(conn: Connection, task_uuid: UUID) -> str:
    """A task's current state (no lock)."""
    row = await (await conn.execute(Q["task_state_get"], {"task_uuid": task_uuid})).fetchone()
    if row is None:
        raise NotFoundError(f"task {task_uuid} does not exist")
    return str(row["state"])


async def task_existing_many(conn: Connection, task_uuids: Sequence[UUID]) -> set[UUID]:
    """Those of the tasks that exist."""
    rows = await (await conn.execute(Q["task_existing_many"], {"task_uuids": list(task_uuids)})).fetchall()
    return {row["task_uuid"] for row in rows}


@dataclass(frozen=True)
class Delivery:
    """A message to send for a step: to which queue, waking which channel."""

    step_uuid: UUID
    queue: str
    channel: str
    correlation_id: UUID


async def task_advance_many(
    conn: Connection,
    *,
    enqueue: Sequence[StepChange],
    deliveries: Sequence[Delivery],
    moves: Sequence[TaskChange],
    ack_queue: str,
    ack_ids: Sequence[int],
) -> None:
    """Enqueue steps with their messages, move tasks and delete applied messages, in one statement.

    Only safe under the tasks' row locks (see the statement's comment). ``deliveries`` name enqueued steps; an
    enqueued step without one gets no message (the caller claims it in this transaction). Its answer is not read,
    so in pipeline mode the statement goes out without waiting (an error still raises, at the latest when the
    transaction ends).
    """
    params: dict[str, Any] = step_change_params(enqueue)
    params["delivery_step_uuids"] = UuidArray(d.step_uuid for d in deliveries)
    params["queues"] = TextArray(d.queue for d in deliveries)
    params["channels"] = TextArray(d.channel for d in deliveries)
    params["delivery_correlation_ids"] = UuidArray(d.correlation_id for d in deliveries)
    task_params = task_change_params(moves)
    params.update({f"task_{k}" if k != "task_uuids" else k: v for k, v in task_params.items()})
    params["ack_queue"] = ack_queue
    params["ack_ids"] = Int8Array(ack_ids)
    await conn.execute(Q["task_advance_many"], params)


async def task_cancelled_notify(conn: Connection, task_uuid: UUID, channel: str) -> None:
    await conn.execute(Q["task_cancelled_notify"], {"channel": channel, "task_uuid": task_uuid})
