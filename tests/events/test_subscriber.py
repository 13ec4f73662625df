"""The subscriber: events arrive live (woken by NOTIFY, the poll set out of reach), survive a killed connection,
and a new subscriber resumes from a cursor with nothing missed and nothing from before it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

import pytest

from tasker.errors import InvalidEventQueryError
from tasker.messaging.events import subscribe
from tasker.model.events import DomainEvent
from tasker.store.db import Connection
from tests.e2e.runtime import create, running, wait_settled
from tests.events.support import NAMESPACE, register_event_templates, rows, until

PAYMENT_EVENTS = 6  # event_publishing: 2 retrying + 3 attempted + 1 captured


@contextlib.asynccontextmanager
async def collecting(db_url: str, after: UUID | None = None) -> AsyncIterator[list[DomainEvent]]:
    """A subscriber to payment.* in the background, its events gathered in a list. Only NOTIFY wakes it: the poll
    that backs signals up is an hour away."""
    got: list[DomainEvent] = []

    async def consume() -> None:
        async with contextlib.aclosing(
            subscribe(db_url, ["payment.*"], after=after, poll_seconds=3600, reconnect_seconds=0.05)
        ) as events:
            async for event in events:
                got.append(event)

    task = asyncio.create_task(consume())
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _run_task(conn: Connection, run: int) -> UUID:
    created = await create(conn, NAMESPACE, "event_publishing", {"run": run})
    assert (await wait_settled(conn, created.task_uuid))["state"] == "complete"
    return created.task_uuid


async def _subscribers(conn: Connection) -> list[int]:
    found = await (
        await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'tasker-events' AND datname = current_database()"
        )
    ).fetchall()
    return [r["pid"] for r in found]


async def _received(got: list[DomainEvent], n: int) -> None:
    async def enough() -> bool:
        return len(got) >= n

    await until(enough, what=f"{n} events at the subscriber")


async def test_live_delivery_reconnect_and_resume_from_a_cursor(conn: Connection, db_url: str) -> None:
    await register_event_templates(conn)
    async with running(db_url, [NAMESPACE]):
        async with collecting(db_url) as live:

            async def listening() -> bool:
                return len(await _subscribers(conn)) == 1

            await until(listening, what="the subscriber to LISTEN")
            first = await _run_task(conn, 1)
            await _received(live, PAYMENT_EVENTS)
            # its connection is killed while it waits; the events of the next task arrive after it reconnects
            pid = (await _subscribers(conn))[0]
            await conn.execute("SELECT pg_terminate_backend(%s)", [pid])
            second = await _run_task(conn, 2)
            await _received(live, 2 * PAYMENT_EVENTS)
        cursor = live[-1].event_uuid
        third = await _run_task(conn, 3)  # while nobody listens
        async with collecting(db_url, after=cursor) as resumed:
            await _received(resumed, PAYMENT_EVENTS)
            fourth = await _run_task(conn, 4)
            await _received(resumed, 2 * PAYMENT_EVENTS)
    stored = await rows(conn, "name LIKE 'payment.%%'")
    by_task = {t: [r["event_uuid"] for r in stored if r["task_uuid"] == t] for t in (first, second, third, fourth)}
    assert [e.event_uuid for e in live] == by_task[first] + by_task[second]  # in order, each once
    assert [e.event_uuid for e in resumed] == by_task[third] + by_task[fourth]  # nothing before the cursor
    assert all(e.name.startswith("payment.") for e in live + resumed)


async def test_a_cursor_naming_no_event_is_refused(db_url: str) -> None:
    events = subscribe(db_url, after=UUID(int=1))
    with pytest.raises(InvalidEventQueryError, match="no event has the id"):
        await anext(events)
    await events.aclose()
