"""Dynamic steps in SQL: adding steps and edges to a running task, checkpoints, isolated batch failures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from tasker.model.dynamic import Growth
from tasker.model.ids import uuid7
from tasker.store.db import Connection
from tasker.store.queries import Q


@dataclass(frozen=True)
class Created:
    steps: int
    edges: int


async def dynamic_steps_create(
    conn: Connection, task_uuid: UUID, growth: Growth, metadata: dict[str, Any] | None = None
) -> Created:
    """Add a growth plan's steps and edges to a task (idempotent; call under the task's row lock)."""
    if growth.empty:
        return Created(0, 0)
    params: dict[str, Any] = {
        "task_uuid": task_uuid,
        "step_uuids": [uuid7() for _ in growth.steps],
        "step_names": [s.name for s in growth.steps],
        "retryable": [s.retryable for s in growth.steps],
        "max_attempts": [s.max_attempts for s in growth.steps],
        "inputs": [Jsonb(s.inputs) if s.inputs else None for s in growth.steps],
        "edge_from": [e.from_name for e in growth.edges],
        "edge_to": [e.to_name for e in growth.edges],
        "edge_names": [e.name for e in growth.edges],
        "edge_fallbacks": [e.fallback_from for e in growth.edges],
        "metadata": Jsonb(
            json.loads(
                json.dumps({"event": "initial", "created_by": growth.source_step, **(metadata or {})}, default=str)
            )
        ),
    }
    steps = edges = 0
    for _ in range(3):  # a named step created concurrently is visible to the next statement
        row = await (await conn.execute(Q["dynamic_steps_create"], params)).fetchone()
        assert row is not None
        steps += row["steps_created"]
        edges += row["edges_created"]
        if not row["unresolved"]:
            return Created(steps, edges)
    raise RuntimeError(f"task {task_uuid}: named steps for {growth.source_step!r}'s new steps could not be resolved")


async def step_isolated_many(conn: Connection, step_uuids: Sequence[UUID]) -> set[UUID]:
    if not step_uuids:
        return set()
    rows = await (await conn.execute(Q["step_isolated_many"], {"step_uuids": list(step_uuids)})).fetchall()
    return {row["workflow_step_uuid"] for row in rows}
