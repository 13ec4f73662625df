"""Durable domain events (``tasker_ext.domain_events``, migration 0013): inserted in the transaction that stores the
steps' results, read in commit order from a cursor."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from tasker.errors import InvalidEventQueryError
from tasker.model.events import NOTIFY_CHANNEL, DomainEvent, Patterns
from tasker.store.db import Connection, pipelined_transaction
from tasker.store.queries import Q

MAX_PAGE = 1000

log = logging.getLogger("tasker.events")


def _insert_params(events: Sequence[DomainEvent]) -> dict[str, Any]:
    return {
        "event_uuids": [e.event_uuid for e in events],
        "names": [e.name for e in events],
        "namespaces": [e.namespace for e in events],
        "task_uuids": [e.task_uuid for e in events],
        "step_uuids": [e.step_uuid for e in events],
        "step_names": [e.step_name for e in events],
        "conditions": [e.condition for e in events],
        "outcomes": [e.outcome for e in events],
        "delivery_modes": [e.delivery_mode for e in events],
        "payloads": [Jsonb(e.payload) for e in events],
        "channel": NOTIFY_CHANNEL,
    }


async def domain_event_insert_many(conn: Connection, events: Sequence[DomainEvent]) -> None:
    """Insert durable events and signal subscribers. Inside the caller's transaction; the result is not read, so
    in a pipeline the statement goes out without waiting (its error raises when the transaction ends)."""
    durable = [e for e in events if e.durable]
    if durable:
        await conn.execute(Q["domain_event_insert_many"], _insert_params(durable))


async def domain_event_store_with(
    conn: Connection,
    events: Sequence[DomainEvent],
    store: Callable[[], Awaitable[set[UUID]]],
) -> set[UUID]:
    """Run ``store()`` (which stores step results and returns the steps it stored) and insert the durable events of
    the stored steps in the same transaction; returns what ``store()`` returned.

    Only the results that won their compare-and-swap publish: a stale claimer (its fence failed), a store that
    rolls back, or a retried store whose first try had committed store nothing now, so they insert nothing. Without
    durable events this is ``store()`` alone, unchanged: no transaction, no extra round trip. With them, the store
    runs in a transaction (pipelined) with the insert. When the insert fails for a reason other than the connection,
    the results are stored again without their events: a bad event never holds a result back.
    """
    if not any(e.durable for e in events):
        return await store()
    stored: set[UUID] | None = None
    try:
        async with pipelined_transaction(conn) as pipeline:
            done = await store()
            await pipeline.sync()  # the store's own errors surface here, before it counts as done
            stored = done
            await domain_event_insert_many(conn, [e for e in events if e.step_uuid in stored])
    except psycopg.OperationalError:
        raise  # the connection: the caller retries the whole store
    except Exception:
        if stored is None:
            raise  # the store itself failed: the caller's to handle, as without events
        # publishing never fails the step: the transaction rolled back whole, so store the results again, alone
        log.exception("storing %d domain event(s) failed; the results are stored without them", len(events))
        return await store()
    return stored


@dataclass(frozen=True)
class EventFilter:
    namespace: str | None = None
    task_uuid: UUID | None = None
    names: Patterns = field(default_factory=Patterns)


@dataclass(frozen=True)
class EventPage:
    events: list[DomainEvent]
    held_back: bool  # events wait behind the horizon (a transaction older than them is still running)


def _event(row: dict[str, Any]) -> DomainEvent:
    return DomainEvent(
        event_uuid=row["event_uuid"],
        name=row["name"],
        namespace=row["namespace"],
        task_uuid=row["task_uuid"],
        step_uuid=row["step_uuid"],
        step_name=row["step_name"],
        condition=row["condition"],
        outcome=row["outcome"],
        delivery_mode=row["delivery_mode"],
        payload=row["payload"],
        created_at=row["created_at"],
    )


async def domain_event_list_many(
    conn: Connection, where: EventFilter, *, after: UUID | None = None, limit: int = 100
) -> EventPage:
    """Events after the cursor ``after`` (an event id; None: from the first), in commit order.

    Raises InvalidEventQueryError when ``after`` names no event (a typo, or the event was deleted): starting over
    silently would deliver everything again, and skipping ahead would lose events."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidEventQueryError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    params = {
        "after": after,
        "namespace": where.namespace,
        "task_uuid": where.task_uuid,
        "name_patterns": where.names.like(),
        "limit": limit,
    }
    rows = await (await conn.execute(Q["domain_event_list_many"], params)).fetchall()
    if not rows[0]["cursor_found"]:
        raise InvalidEventQueryError(f"after: no event has the id {after}")
    return EventPage([_event(r) for r in rows if r["event_uuid"] is not None], bool(rows[0]["held_back"]))
