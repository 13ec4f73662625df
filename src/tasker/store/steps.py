"""Step reads used on the hot path: readiness, result processing, claiming and handler context."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from tasker.store.db import Connection
from tasker.store.queries import Q


async def step_readiness(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["step_readiness"], {"task_uuid": task_uuid})).fetchall()


async def step_outcome_many(conn: Connection, step_uuids: Sequence[UUID]) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["step_outcome_many"], {"step_uuids": list(step_uuids)})).fetchall()


async def step_claim_view_many(conn: Connection, step_uuids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    rows = await (await conn.execute(Q["step_claim_view_many"], {"step_uuids": list(step_uuids)})).fetchall()
    return {row["workflow_step_uuid"]: row for row in rows}


async def step_context_many(conn: Connection, step_uuids: Sequence[UUID]) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["step_context_many"], {"step_uuids": list(step_uuids)})).fetchall()


async def template_configuration_get(conn: Connection, named_task_uuid: UUID) -> dict[str, Any] | None:
    row = await (await conn.execute(Q["template_configuration_get"], {"named_task_uuid": named_task_uuid})).fetchone()
    return row["configuration"] if row else None


async def task_ready_many(conn: Connection, limit: int) -> list[UUID]:
    rows = await (await conn.execute(Q["task_ready_many"], {"limit": limit})).fetchall()
    return [row["task_uuid"] for row in rows]
