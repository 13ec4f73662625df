"""Schedules and their runs in ``tasker_ext`` (see store/sql/schedules.sql); the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from tasker.errors import ScheduleConflictError
from tasker.store.db import Connection
from tasker.store.queries import Q


async def schedule_insert(conn: Connection, values: dict[str, Any], *, channel: str) -> dict[str, Any]:
    """Insert a schedule (``values``: the table's columns) and notify ``channel``; a taken name raises
    ScheduleConflictError."""
    params = {**values, "context": Jsonb(values["context"]), "tags": Jsonb(values["tags"]), "channel": channel}
    try:
        row = await (await conn.execute(Q["schedule_insert"], params)).fetchone()
    except UniqueViolation:
        name = values["name"]
        raise ScheduleConflictError(f"a schedule named {name!r} already exists", name=name) from None
    assert row is not None
    return row


async def schedule_list(conn: Connection) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["schedule_list"])).fetchall()


async def schedule_get(conn: Connection, name: str) -> dict[str, Any] | None:
    return await (await conn.execute(Q["schedule_get"], {"name": name})).fetchone()


async def schedule_delete(conn: Connection, name: str, *, channel: str) -> bool:
    row = await (await conn.execute(Q["schedule_delete"], {"name": name, "channel": channel})).fetchone()
    return row is not None


async def schedule_set_enabled(
    conn: Connection, name: str, enabled: bool, next_run_at: datetime | None, *, channel: str
) -> dict[str, Any] | None:
    params = {"name": name, "enabled": enabled, "next_run_at": next_run_at, "channel": channel}
    return await (await conn.execute(Q["schedule_set_enabled"], params)).fetchone()


async def schedule_claim_due(conn: Connection) -> dict[str, Any] | None:
    """Lock the most overdue schedule nobody else holds (inside a transaction); its row has ``db_now``."""
    return await (await conn.execute(Q["schedule_claim_due"])).fetchone()


async def schedule_fired(
    conn: Connection,
    *,
    schedule_uuid: UUID,
    scheduled_for: datetime,
    missed_since: datetime | None,
    next_run_at: datetime,
    task_uuid: UUID | None,
    error: str | None,
    processor_uuid: UUID | None,
) -> UUID:
    """Record the run and advance the schedule; a second run for the same tick raises UniqueViolation."""
    params = {
        "schedule_uuid": schedule_uuid,
        "scheduled_for": scheduled_for,
        "missed_since": missed_since,
        "next_run_at": next_run_at,
        "task_uuid": task_uuid,
        "error": error,
        "processor_uuid": processor_uuid,
    }
    row = await (await conn.execute(Q["schedule_fired"], params)).fetchone()
    assert row is not None
    run_uuid: UUID = row["schedule_run_uuid"]
    return run_uuid


async def schedule_next_due(conn: Connection) -> float | None:
    """Seconds until the next enabled schedule is due by the database's clock (≤ 0: due now), None if none."""
    row = await (await conn.execute(Q["schedule_next_due"])).fetchone()
    return None if row is None or row["seconds"] is None else float(row["seconds"])


async def schedule_runs_recent(conn: Connection, name: str, limit: int = 10) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["schedule_runs_recent"], {"name": name, "limit": limit})).fetchall()
