"""The one guarded transition per entity, batch-first.

A change names the state the entity must be in now and the events to apply; the state machine (``model.machines``)
turns them into a path of states and the column effects, and one SQL statement locks, compares, flips
``most_recent``, appends the rows and updates the denormalised columns (and, for step results, writes the audit
row). It runs in the caller's transaction. Entities that were not in the expected state are reported back, never
overwritten: the ``_many`` forms return the winners, the single forms raise :class:`LostRaceError`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from tasker.errors import LostRaceError
from tasker.model.machines import StepEvent, TaskEvent, step_effects, step_path, task_path
from tasker.model.states import StepState, TaskState
from tasker.store.db import (
    BoolArray,
    Connection,
    Int4Array,
    Int8Array,
    JsonbArray,
    Pending,
    TextArray,
    TypedArray,
    UuidArray,
)
from tasker.store.queries import Q


@dataclass(frozen=True)
class TaskChange:
    task_uuid: UUID
    from_state: TaskState
    events: list[TaskEvent]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepAudit:
    """What the audit row of a stored result records."""

    success: bool
    worker_uuid: UUID | None
    correlation_id: UUID | None
    execution_time_ms: int


@dataclass(frozen=True)
class StepChange:
    step_uuid: UUID
    from_state: StepState
    events: list[StepEvent]
    metadata: dict[str, Any] = field(default_factory=dict)
    expected_attempts: int | None = None
    results: Any = None
    backoff_seconds: int | None = None
    audit: StepAudit | None = None


@dataclass(frozen=True)
class StepTransitioned:
    step_uuid: UUID
    task_uuid: UUID
    state: StepState
    attempts: int
    transition_uuid: UUID


def _hops(states: Sequence[str], events: Sequence[str]) -> Jsonb:
    return Jsonb([{"state": s, "event": e} for s, e in zip(states, events, strict=True)])


def task_change_params(changes: Sequence[TaskChange]) -> dict[str, Any]:
    paths = [task_path(c.from_state, c.events) for c in changes]
    return {
        "task_uuids": UuidArray(c.task_uuid for c in changes),
        "from_states": TextArray(str(c.from_state) for c in changes),
        "paths": JsonbArray(_hops(p, c.events) for p, c in zip(paths, changes, strict=True)),
        "metadata": JsonbArray(Jsonb(json_safe(c.metadata)) for c in changes),
    }


def _task_winners(rows: list[dict[str, Any]]) -> dict[UUID, TaskState]:
    return {row["task_uuid"]: TaskState(row["to_state"]) for row in rows}


async def task_transition_many(conn: Connection, changes: Sequence[TaskChange]) -> dict[UUID, TaskState]:
    """Apply the changes that win their compare-and-swap; returns task → new state for the winners."""
    if not changes:
        return {}
    rows = await (await conn.execute(Q["task_transition_many"], task_change_params(changes))).fetchall()
    return _task_winners(rows)


async def task_transition(conn: Connection, change: TaskChange) -> TaskState:
    won = await task_transition_many(conn, [change])
    if change.task_uuid not in won:
        raise LostRaceError(
            f"task {change.task_uuid} was not in state '{change.from_state}' (or another process moved it first)"
        )
    return won[change.task_uuid]


# The columns of a batch of step changes, each with its array type (see store.db.TypedArray).
STEP_CHANGE_COLUMNS: dict[str, type[TypedArray]] = {
    "step_uuids": UuidArray,
    "from_states": TextArray,
    "paths": JsonbArray,
    "metadata": JsonbArray,
    "expected_attempts": Int4Array,
    "in_process": BoolArray,
    "processed": BoolArray,
    "stamp_processed_at": BoolArray,
    "count_attempt": BoolArray,
    "reset_attempts": BoolArray,
    "results": JsonbArray,
    "backoff_seconds": Int4Array,
    "audit_success": BoolArray,
    "worker_uuids": UuidArray,
    "correlation_ids": UuidArray,
    "execution_ms": Int8Array,
}


def step_change_params(changes: Sequence[StepChange]) -> dict[str, Any]:
    params: dict[str, list[Any]] = {name: array() for name, array in STEP_CHANGE_COLUMNS.items()}
    for change in changes:
        path = step_path(change.from_state, change.events)
        effects = step_effects(change.events, path)
        audit = change.audit
        params["step_uuids"].append(change.step_uuid)
        params["from_states"].append(str(change.from_state))
        params["paths"].append(_hops(path, change.events))
        params["metadata"].append(Jsonb(json_safe(change.metadata)))
        params["expected_attempts"].append(change.expected_attempts)
        params["in_process"].append(effects.in_process)
        params["processed"].append(effects.processed)
        params["stamp_processed_at"].append(effects.stamp_processed_at)
        params["count_attempt"].append(effects.count_attempt)
        params["reset_attempts"].append(effects.reset_attempts)
        params["results"].append(None if change.results is None else Jsonb(change.results))
        params["backoff_seconds"].append(change.backoff_seconds)
        params["audit_success"].append(audit.success if audit else None)
        params["worker_uuids"].append(audit.worker_uuid if audit else None)
        params["correlation_ids"].append(audit.correlation_id if audit else None)
        params["execution_ms"].append(audit.execution_time_ms if audit else None)
    return params


def _step_winners(rows: list[dict[str, Any]]) -> dict[UUID, StepTransitioned]:
    return {
        row["workflow_step_uuid"]: StepTransitioned(
            step_uuid=row["workflow_step_uuid"],
            task_uuid=row["task_uuid"],
            state=StepState(row["to_state"]),
            attempts=row["attempts"] or 0,
            transition_uuid=row["workflow_step_transition_uuid"],
        )
        for row in rows
    }


async def step_transition_many(conn: Connection, changes: Sequence[StepChange]) -> dict[UUID, StepTransitioned]:
    """Apply the changes that win their compare-and-swap; returns step → outcome for the winners."""
    return await (await step_transition_many_send(conn, changes))()


async def step_transition_many_send(
    conn: Connection, changes: Sequence[StepChange]
) -> Pending[dict[UUID, StepTransitioned]]:
    """:func:`step_transition_many`, sent now and read later (see ``store.db.Pending``)."""
    if not changes:
        return _nothing_won
    cursor = await conn.execute(Q["step_transition_many"], step_change_params(changes))

    async def read() -> dict[UUID, StepTransitioned]:
        return _step_winners(await cursor.fetchall())

    return read


async def _nothing_won() -> dict[UUID, StepTransitioned]:
    return {}


async def step_transition(conn: Connection, change: StepChange) -> StepTransitioned:
    won = await step_transition_many(conn, [change])
    if change.step_uuid not in won:
        raise LostRaceError(
            f"step {change.step_uuid} was not in state '{change.from_state}' (or another process moved it first)"
        )
    return won[change.step_uuid]


async def task_initial_transition_many(
    conn: Connection, task_uuids: Sequence[UUID], metadata: dict[str, Any], processor_uuid: UUID | None = None
) -> None:
    await conn.execute(
        Q["task_transition_initial_many"],
        {
            "task_uuids": list(task_uuids),
            "metadata": [Jsonb(json_safe(metadata))] * len(task_uuids),
            "processor_uuid": processor_uuid,
        },
    )


async def step_initial_transition_many(conn: Connection, step_uuids: Sequence[UUID], metadata: dict[str, Any]) -> None:
    await conn.execute(
        Q["step_transition_initial_many"], {"step_uuids": list(step_uuids), "metadata": Jsonb(json_safe(metadata))}
    )


def json_safe(metadata: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe metadata: UUIDs and other non-JSON values become strings."""
    return dict(json.loads(json.dumps(metadata, default=str)))
