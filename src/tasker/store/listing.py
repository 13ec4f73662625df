"""Read models for the faces: task listings with filters and pages, step details and audit, state counts, queue
depths and analytics. Every statement lives in ``sql/listing.sql``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.errors import UndefinedTable

from tasker.store.db import Connection
from tasker.store.queries import Q


@dataclass(frozen=True)
class TaskFilter:
    namespace: str | None = None
    name: str | None = None
    state: str | None = None
    initiator: str | None = None
    source_system: str | None = None

    def params(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "state": self.state,
            "initiator": self.initiator,
            "source_system": self.source_system,
        }


async def task_list(conn: Connection, where: TaskFilter, *, limit: int, offset: int) -> tuple[list[UUID], int]:
    """One page of matching task ids (newest first) and the number of all matching tasks."""
    params = where.params()
    row = await (await conn.execute(Q["task_list_count"], params)).fetchone()
    total = int(row["total_count"]) if row else 0
    rows = await (await conn.execute(Q["task_list_page"], {**params, "limit": limit, "offset": offset})).fetchall()
    return [r["task_uuid"] for r in rows], total


async def task_details_many(conn: Connection, task_uuids: list[UUID]) -> list[dict[str, Any]]:
    if not task_uuids:
        return []
    return await (await conn.execute(Q["task_details_many"], {"task_uuids": task_uuids})).fetchall()


async def step_details(conn: Connection, task_uuid: UUID, step_uuids: list[UUID] | None = None) -> list[dict[str, Any]]:
    params = {"task_uuid": task_uuid, "step_uuids": step_uuids}
    return await (await conn.execute(Q["step_details"], params)).fetchall()


async def step_audit(conn: Connection, task_uuid: UUID, step_uuid: UUID) -> list[dict[str, Any]]:
    params = {"task_uuid": task_uuid, "step_uuid": step_uuid}
    return await (await conn.execute(Q["step_audit_list"], params)).fetchall()


async def dlq_status(conn: Connection, task_uuid: UUID) -> dict[str, Any] | None:
    return await (await conn.execute(Q["dlq_status_for_task"], {"task_uuid": task_uuid})).fetchone()


async def state_counts(conn: Connection) -> dict[str, dict[str, int]]:
    """``{"task": {state: n}, "step": {state: n}}`` over current states."""
    counts: dict[str, dict[str, int]] = {"task": {}, "step": {}}
    for row in await (await conn.execute(Q["state_counts"])).fetchall():
        counts[row["kind"]][row["state"]] = int(row["count"])
    return counts


async def queue_depths(conn: Connection) -> dict[str, int]:
    """Messages waiting per queue; a queue dropped between listing and counting is skipped."""
    depths: dict[str, int] = {}
    for row in await (await conn.execute(Q["queue_names"])).fetchall():
        try:
            found = await (await conn.execute(Q["queue_depth"], {"queue": row["queue_name"]})).fetchone()
        except UndefinedTable:
            continue
        depths[row["queue_name"]] = int(found["depth"]) if found else 0
    return depths


async def worker_connection_count(conn: Connection) -> int:
    """Worker processes connected to this database (by their application_name)."""
    row = await (await conn.execute(Q["worker_connection_count"])).fetchone()
    return int(row["workers"]) if row else 0


async def queue_unread(conn: Connection, queue: str, seconds: float) -> tuple[int, float]:
    """Messages of ``queue`` visible for over ``seconds`` and never read, and how long the oldest has waited;
    (0, 0.0) for a queue that does not exist (yet)."""
    statement = sql.SQL(Q["queue_unread_count"]).format(queue_table=sql.Identifier(f"q_{queue}"))
    try:
        row = await (await conn.execute(statement, {"seconds": seconds})).fetchone()
    except UndefinedTable:
        return 0, 0.0
    if not row or not row["messages"]:
        return 0, 0.0
    return int(row["messages"]), float(row["oldest_seconds"] or 0.0)


async def analytics_performance(conn: Connection, since: datetime) -> dict[str, Any]:
    row = await (await conn.execute(Q["analytics_performance"], {"since": since})).fetchone()
    return dict(row or {})


async def analytics_slow(
    conn: Connection, since: datetime, *, limit: int, min_executions: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    params = {"since": since, "limit": limit, "min_executions": min_executions}
    steps = await (await conn.execute(Q["analytics_slow_steps"], params)).fetchall()
    tasks = await (await conn.execute(Q["analytics_slow_tasks"], params)).fetchall()
    return steps, tasks


async def state_counts_by_namespace(conn: Connection) -> list[dict[str, Any]]:
    """Rows of (kind 'task'|'step', namespace, state, count) over current states."""
    return await (await conn.execute(Q["state_counts_by_namespace"])).fetchall()


async def dlq_counts(conn: Connection) -> list[dict[str, Any]]:
    """Rows of (dlq_reason, resolution_status, count)."""
    return await (await conn.execute(Q["dlq_counts"])).fetchall()
