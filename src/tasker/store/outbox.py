"""The transactional outbox (``tasker_ext.outbox``, migration 0012): messages written in the transaction of the
state change they announce, published to RabbitMQ by a sender after the commit (see ``messaging.outbox``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from tasker.store.db import Connection, Pending
from tasker.store.queries import Q
from tasker.store.steps import StoredResults, nothing_stored, result_store_params, stored_results_of
from tasker.store.tasks import Delivery
from tasker.store.transitions import StepChange, TaskChange, step_change_params, task_change_params


@dataclass(frozen=True)
class OutboxMessage:
    """A message to publish: to which logical queue, the body, how often it was read before, and how long it waits."""

    queue: str
    body: dict[str, Any]
    reads: int = 0
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class OutboxRow:
    outbox_uuid: UUID
    queue: str
    body: dict[str, Any]
    reads: int


async def outbox_insert_many(conn: Connection, messages: Sequence[OutboxMessage], *, channel: str) -> None:
    """Queue messages for publishing after the caller's transaction commits (pipeline mode allowed: no fetch)."""
    if messages:
        await conn.execute(Q["outbox_insert_many"], _insert_params(messages, channel))


async def outbox_insert_returning_many(
    conn: Connection, messages: Sequence[OutboxMessage], *, channel: str
) -> list[UUID]:
    """:func:`outbox_insert_many`, returning the rows' ids."""
    if not messages:
        return []
    row = await (await conn.execute(Q["outbox_insert_many"], _insert_params(messages, channel))).fetchone()
    return list(row["outbox_uuids"] or []) if row else []


async def outbox_redirect_many(conn: Connection, outbox_uuids: Sequence[UUID]) -> set[UUID]:
    """Send these waiting rows to their queue's ``_dlq`` instead; returns those still waiting (now redirected)."""
    if not outbox_uuids:
        return set()
    rows = await (await conn.execute(Q["outbox_redirect_many"], {"outbox_uuids": list(outbox_uuids)})).fetchall()
    return {row["outbox_uuid"] for row in rows}


def _insert_params(messages: Sequence[OutboxMessage], channel: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "queues": [m.queue for m in messages],
        "bodies": [Jsonb(m.body) for m in messages],
        "reads": [m.reads for m in messages],
        "delays": [max(m.delay_seconds, 0.0) for m in messages],
        "channel": channel,
    }
    return params


async def outbox_task_advance_many(
    conn: Connection,
    *,
    enqueue: Sequence[StepChange],
    deliveries: Sequence[Delivery],
    moves: Sequence[TaskChange],
    channel: str,
) -> dict[str, int]:
    """Enqueue steps with outbox rows for their messages and move tasks, in one statement (tasks locked)."""
    params: dict[str, Any] = step_change_params(enqueue)
    params["delivery_step_uuids"] = [d.step_uuid for d in deliveries]
    params["queues"] = [d.queue for d in deliveries]
    params["delivery_correlation_ids"] = [d.correlation_id for d in deliveries]
    task_params = task_change_params(moves)
    params.update({f"task_{k}" if k != "task_uuids" else k: v for k, v in task_params.items()})
    params["channel"] = channel
    row = await (await conn.execute(Q["outbox_task_advance_many"], params)).fetchone()
    return dict(row or {})


async def outbox_step_result_store_many(
    conn: Connection,
    results: Sequence[StepChange],
    *,
    results_queue: str,
    channel: str,
    lock_tasks: Sequence[UUID | None] = (),
) -> Pending[StoredResults]:
    """Store fenced results with an outbox row each for ``results_queue`` (sent now, read by awaiting the answer);
    ``lock_tasks`` as in ``store.steps.step_result_store_many``: results of tasks locked here are not announced."""
    if not results:
        return nothing_stored
    params = result_store_params(results, lock_tasks)
    params["results_queue"] = results_queue
    params["channel"] = channel
    return stored_results_of(await conn.execute(Q["outbox_step_result_store_many"], params))


async def outbox_take_many(conn: Connection, limit: int) -> list[OutboxRow]:
    """Lock the next due rows (call inside a transaction; they are deleted in it once published)."""
    rows = await (await conn.execute(Q["outbox_take_many"], {"limit": limit})).fetchall()
    return [OutboxRow(r["outbox_uuid"], r["queue"], r["body"], r["reads"]) for r in rows]


async def outbox_delete_many(conn: Connection, outbox_uuids: Sequence[UUID]) -> None:
    if outbox_uuids:
        await conn.execute(Q["outbox_delete_many"], {"outbox_uuids": list(outbox_uuids)})


async def outbox_next_due(conn: Connection) -> float | None:
    """Seconds until the earliest row is due (<= 0: now), None when the outbox is empty."""
    row = await (await conn.execute(Q["outbox_next_due"])).fetchone()
    return None if row is None or row["seconds"] is None else float(row["seconds"])


async def outbox_count(conn: Connection) -> int:
    row = await (await conn.execute(Q["outbox_count"])).fetchone()
    return int(row["waiting"]) if row else 0


async def transaction_id_current(conn: Connection) -> str:
    row = await (await conn.execute(Q["transaction_id_current"])).fetchone()
    assert row is not None
    return str(row["xid"])


async def transaction_status_many(conn: Connection, xids: Sequence[str]) -> dict[str, str | None]:
    """``committed``, ``aborted``, ``in progress`` or None (unknown) per transaction id."""
    rows = await (await conn.execute(Q["transaction_status_many"], {"xids": list(xids)})).fetchall()
    return {row["xid"]: row["status"] for row in rows}
