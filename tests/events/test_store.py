"""The events table on real PostgreSQL: inserted in the store's transaction or not at all, read in commit order
behind the horizon (a late commit with a smaller id is not skipped), filters, cursors, bad cursors."""

from __future__ import annotations

from uuid import UUID, uuid4

import psycopg
import pytest

from tasker.errors import InvalidEventQueryError
from tasker.model.events import DomainEvent, Patterns
from tasker.store.db import Connection, connect
from tasker.store.events import EventFilter, domain_event_insert_many, domain_event_list_many, domain_event_store_with
from tests.events.support import event, rows, until


async def _names(conn: Connection, where: EventFilter | None = None, after: UUID | None = None) -> list[str]:
    page = await domain_event_list_many(conn, where or EventFilter(), after=after, limit=1000)
    return [e.name for e in page.events]


async def test_events_of_stored_steps_only_are_inserted_with_the_store(conn: Connection) -> None:
    stored, lost = uuid4(), uuid4()
    await conn.execute("CREATE TEMP TABLE stored_marker (step_uuid uuid)")
    events = [event("won.a", step_uuid=stored), event("won.b", step_uuid=stored), event("lost", step_uuid=lost)]

    async def store() -> set[UUID]:  # a real statement standing for the result store: only `stored` wins
        await conn.execute("INSERT INTO stored_marker VALUES (%s)", [stored])
        return {stored}

    assert await domain_event_store_with(conn, events, store) == {stored}
    assert [r["name"] for r in await rows(conn)] == ["won.a", "won.b"]
    assert len(await rows(conn, "txid = (SELECT txid FROM tasker_ext.domain_events LIMIT 1)")) == 2  # one transaction


async def test_a_store_that_fails_leaves_no_event_and_a_failed_insert_never_holds_the_result_back(
    conn: Connection,
) -> None:
    await conn.execute("CREATE TEMP TABLE stored_marker (step_uuid uuid)")
    step = uuid4()

    async def failing_store() -> set[UUID]:
        await conn.execute("INSERT INTO stored_marker VALUES (%s)", [step])
        await conn.execute("SELECT 1 / 0")
        return {step}

    with pytest.raises(psycopg.errors.DivisionByZero):
        await domain_event_store_with(conn, [event("never", step_uuid=step)], failing_store)
    assert await rows(conn) == []

    async def store() -> set[UUID]:
        await conn.execute("INSERT INTO stored_marker VALUES (%s)", [step])
        return {step}

    broken = event("broken", step_uuid=step)
    broken = DomainEvent(**{**broken.as_dict(), "outcome": "not-an-outcome"})  # violates the table's CHECK
    # the insert fails, its transaction (the store with it) rolls back, and the result is stored again, alone
    assert await domain_event_store_with(conn, [broken], store) == {step}
    marker = await (await conn.execute("SELECT count(*) AS n FROM stored_marker")).fetchone()
    assert marker is not None and marker["n"] == 1 and await rows(conn) == []


async def test_without_durable_events_the_store_runs_alone(conn: Connection) -> None:
    step = uuid4()

    async def store() -> set[UUID]:
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE  # no transaction opened for it
        return {step}

    assert await domain_event_store_with(conn, [event("quick", step_uuid=step, delivery_mode="fast")], store) == {step}
    assert await rows(conn) == []


async def test_a_late_commit_with_a_smaller_id_is_read_after_not_skipped(conn: Connection, db_url: str) -> None:
    early = event("early")  # its id is older than late's, but its transaction commits last
    late = event("late")
    slow = await connect(db_url)
    try:
        await slow.execute("BEGIN")
        await domain_event_insert_many(slow, [early])
        await domain_event_insert_many(conn, [late])  # autocommit: committed now
        page = await domain_event_list_many(conn, EventFilter())
        assert page.events == [] and page.held_back  # behind the horizon: the older transaction still runs
        await slow.execute("COMMIT")
    finally:
        await slow.close()

    async def both() -> bool:
        return len(await _names(conn)) == 2

    await until(both, what="both events past the horizon")
    assert await _names(conn) == ["early", "late"]  # commit order: early's transaction began (took its id) first


async def test_filters_globs_and_cursor_paging(conn: Connection) -> None:
    task = uuid4()
    names = ["order.created", "order.item.added", "orders.closed", "payment.done", "order_x", "order%y"]
    for name in names:
        await domain_event_insert_many(conn, [event(name, task_uuid=task if name.startswith("order.") else None)])
    await domain_event_insert_many(conn, [event("order.created", namespace="elsewhere")])

    async def all_visible() -> bool:
        return len(await _names(conn)) == 7

    await until(all_visible, what="the events past the horizon")
    assert await _names(conn, EventFilter(names=Patterns(["order.*"]))) == [
        "order.created", "order.item.added", "order.created"]  # fmt: skip
    assert await _names(conn, EventFilter(names=Patterns(["order?x"]))) == ["order_x"]
    assert await _names(conn, EventFilter(names=Patterns(["order%y"]))) == ["order%y"]  # LIKE characters are literal
    assert await _names(conn, EventFilter(names=Patterns(["order_y"]))) == []
    assert await _names(conn, EventFilter(names=Patterns(["payment.done", "orders.*"]))) == [
        "orders.closed", "payment.done"]  # fmt: skip
    assert await _names(conn, EventFilter(namespace="elsewhere")) == ["order.created"]
    assert await _names(conn, EventFilter(task_uuid=task)) == ["order.created", "order.item.added"]

    first = await domain_event_list_many(conn, EventFilter(), limit=3)
    second = await domain_event_list_many(conn, EventFilter(), after=first.events[-1].event_uuid, limit=3)
    third = await domain_event_list_many(conn, EventFilter(), after=second.events[-1].event_uuid, limit=3)
    paged = [e.name for page in (first, second, third) for e in page.events]
    assert paged == [*names, "order.created"]
    last = await domain_event_list_many(conn, EventFilter(), after=third.events[-1].event_uuid)
    assert last.events == []


async def test_a_cursor_naming_no_event_is_refused(conn: Connection) -> None:
    with pytest.raises(InvalidEventQueryError, match="no event has the id"):
        await domain_event_list_many(conn, EventFilter(), after=uuid4())
    with pytest.raises(InvalidEventQueryError, match="limit"):
        await domain_event_list_many(conn, EventFilter(), limit=0)
    with pytest.raises(InvalidEventQueryError, match="empty"):
        Patterns([" "])
