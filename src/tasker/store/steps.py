"""Step reads used on the hot path: readiness, result processing, claiming and handler context."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

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
