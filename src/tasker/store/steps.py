"""Step reads used on the hot path: readiness, result processing, claiming and handler context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from tasker.store.db import Connection
from tasker.store.queries import Q
from tasker.store.transitions import StepAudit, StepChange, step_change_params


async def step_readiness(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["step_readiness"], {"task_uuid": task_uuid})).fetchall()


async def step_outcome_many(conn: Connection, step_uuids: Sequence[UUID]) -> list[dict[str, Any]]:
    return await (await conn.execute(Q["step_outcome_many"], {"step_uuids": list(step_uuids)})).fetchall()


async def step_claim_view_many(conn: Connection, step_uuids: Sequence[UUID]) -> dict[UUID, dict[str, Any]]:
    rows = await (await conn.execute(Q["step_claim_view_many"], {"step_uuids": list(step_uuids)})).fetchall()
    return {row["workflow_step_uuid"]: row for row in rows}


async def step_claim_many(conn: Connection, claims: Sequence[StepChange]) -> list[dict[str, Any]]:
    """Claim steps and read their handler context in one statement; rows only for the claims that won."""
    if not claims:
        return []
    return await (await conn.execute(Q["step_claim_many"], step_change_params(claims))).fetchall()


@dataclass(frozen=True)
class HeldMessage:
    """The step message a worker holds for a step whose result it stores."""

    step_uuid: UUID
    queue: str
    msg_id: int


async def step_result_store_many(
    conn: Connection,
    results: Sequence[StepChange],
    held: Sequence[HeldMessage],
    *,
    results_queue: str,
    results_channel: str,
) -> set[UUID]:
    """Store results, announce them on ``results_queue`` and delete their step messages, in one statement;
    returns the steps whose results were stored. ``held`` lists the messages in the same order as ``results``."""
    if not results:
        return set()
    params: dict[str, Any] = step_change_params(results)
    params["queues"] = [h.queue for h in held]
    params["msg_ids"] = [h.msg_id for h in held]
    params["results_queue"] = results_queue
    params["results_channel"] = results_channel
    rows = await (await conn.execute(Q["step_result_store_many"], params)).fetchall()
    return {row["workflow_step_uuid"] for row in rows}


async def task_ready_many(conn: Connection, limit: int) -> list[UUID]:
    rows = await (await conn.execute(Q["task_ready_many"], {"limit": limit})).fetchall()
    return [row["task_uuid"] for row in rows]


async def step_readiness_many(conn: Connection, task_uuids: Sequence[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """Readiness of several tasks' steps, grouped by task."""
    rows = await (await conn.execute(Q["step_readiness_many"], {"task_uuids": list(task_uuids)})).fetchall()
    grouped: dict[UUID, list[dict[str, Any]]] = {t: [] for t in task_uuids}
    for row in rows:
        grouped.setdefault(row["task_uuid"], []).append(row)
    return grouped


async def step_result_late_record_many(conn: Connection, late: Sequence[tuple[UUID, StepAudit]]) -> set[UUID]:
    """Record results that came too late (their step is final now) in the audit trail, without applying them;
    returns the steps that are final (their messages may be acknowledged)."""
    if not late:
        return set()
    params = {
        "step_uuids": [step for step, _ in late],
        "success": [audit.success for _, audit in late],
        "worker_uuids": [audit.worker_uuid for _, audit in late],
        "correlation_ids": [audit.correlation_id for _, audit in late],
        "execution_ms": [audit.execution_time_ms for _, audit in late],
    }
    rows = await (await conn.execute(Q["step_result_late_record_many"], params)).fetchall()
    return {row["workflow_step_uuid"] for row in rows}
