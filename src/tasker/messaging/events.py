"""Subscribe to durable domain events: ``async for event in subscribe(url, ["order.*"], after=cursor)``.

Delivery is at least once, in commit order, with nothing skipped: the subscriber LISTENs on the events channel
(a signal with no payload, sent by the inserting transaction at commit) and, on every wake-up, reads the table from
its cursor until it has caught up, so a notification lost while it was away (a reconnect, a database restart)
costs nothing: the next read finds the rows. A slow poll (``poll_seconds``) backs the signal up. The cursor is the
id of the last event handed out; to resume after a restart, keep ``event.event_uuid`` once the event is handled
and pass it as ``after``: events after it are delivered, the ones up to it are not, so an event being handled when
the process died comes again (at least once). Only ``durable`` and ``broadcast`` events are in the table; ``fast``
ones reach only the in-process subscribers of the worker that stored the result (tasker.worker.events).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from uuid import UUID

import psycopg
from psycopg import sql

from tasker.errors import DatabaseUnavailableError
from tasker.model.events import NOTIFY_CHANNEL, DomainEvent, Patterns
from tasker.store.db import Connection, connect
from tasker.store.events import EventFilter, domain_event_list_many

log = logging.getLogger("tasker.events")
HELD_BACK_FIRST_DELAY = 0.02  # events wait behind an older running transaction: look again soon, then less often


async def subscribe(
    database_url: str,
    patterns: Iterable[str] = (),
    *,
    after: UUID | None = None,
    namespace: str | None = None,
    task_uuid: UUID | None = None,
    batch_size: int = 100,
    poll_seconds: float = 5.0,
    reconnect_seconds: float = 1.0,
) -> AsyncIterator[DomainEvent]:
    """Durable events whose name matches one of ``patterns`` (globs; none: all), after the event ``after`` (None:
    from the first event stored), forever. Close it (``aclose()``, or ``contextlib.aclosing``) to release its
    connection. Raises InvalidEventQueryError at the first read when ``after`` names no event."""
    where = EventFilter(namespace=namespace, task_uuid=task_uuid, names=Patterns(patterns))
    cursor = after
    conn: Connection | None = None
    held_delay = HELD_BACK_FIRST_DELAY
    try:
        while True:
            try:
                if conn is None:
                    conn = await _listening(database_url)
                page = await domain_event_list_many(conn, where, after=cursor, limit=batch_size)
                for event in page.events:
                    yield event
                    cursor = event.event_uuid
                if len(page.events) == batch_size:
                    continue  # more to read
                if page.held_back:
                    await _wait(conn, held_delay)
                    held_delay = min(held_delay * 2, poll_seconds)
                else:
                    held_delay = HELD_BACK_FIRST_DELAY
                    await _wait(conn, poll_seconds)
            except (psycopg.OperationalError, DatabaseUnavailableError) as exc:  # a restart, a dropped connection
                log.warning("event subscription lost its connection (%s); reconnecting", exc)
                await _drop(conn)
                conn = None
                await asyncio.sleep(reconnect_seconds)
    finally:
        await _drop(conn)


async def _listening(database_url: str) -> Connection:
    """LISTEN before the first read: a commit after the read then always leaves a notification to wake on."""
    conn = await connect(database_url, application_name="tasker-events")
    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
    return conn


async def _wait(conn: Connection, timeout: float) -> None:
    """Until a notification says there may be more, or ``timeout`` seconds (the poll that backs signals up)."""
    async for _ in conn.notifies(timeout=timeout, stop_after=1):
        break
    async for _ in conn.notifies(timeout=0):  # signals that came together: one read covers them all
        pass


async def _drop(conn: Connection | None) -> None:
    if conn is not None and not conn.closed:
        with contextlib.suppress(psycopg.Error):
            await conn.close()
