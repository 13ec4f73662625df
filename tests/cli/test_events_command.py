"""``tasker events list`` on the test's own database: table, JSON, filters, cursor, a bad cursor."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from tasker.store.db import connect
from tasker.store.events import domain_event_insert_many
from tests.cli.coverage import covers, invoke
from tests.events.support import event


def _insert(db_url: str, names: list[str]) -> None:
    async def go() -> None:
        conn = await connect(db_url)
        try:
            for name in names:
                await domain_event_insert_many(conn, [event(name)])
        finally:
            await conn.close()

    asyncio.run(go())


def _listed(db_url: str, *args: str) -> dict[str, object]:
    result = invoke(db_url, "events", "list", "--json", *args)
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


@covers("events list")
def test_events_list(db_url: str) -> None:
    names = ["order.created", "payment.done", "order.shipped"]
    _insert(db_url, names)
    deadline = time.monotonic() + 30
    while _listed(db_url)["count"] != 3:  # past the read horizon (other transactions on the server can hold it)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    listed = _listed(db_url)
    events = listed["events"]
    assert isinstance(events, list) and [e["name"] for e in events] == names
    orders = _listed(db_url, "--name", "order.*")["events"]
    assert isinstance(orders, list) and [e["name"] for e in orders] == ["order.created", "order.shipped"]
    page = _listed(db_url, "--limit", "1")
    rest = _listed(db_url, "--after", str(page["next_after"]))["events"]
    assert isinstance(rest, list) and [e["name"] for e in rest] == names[1:]

    table = invoke(db_url, "events", "list", "--limit", "2")
    assert table.exit_code == 0 and "order.created" in table.stdout and "payment.done" in table.stdout
    assert f"next page: --after {events[1]['event_uuid']}" in table.stdout
    assert str(events[0]["event_uuid"]) in table.stdout

    bad = invoke(db_url, "events", "list", "--after", str(uuid.uuid4()))
    assert bad.exit_code == 1 and "no event has the id" in bad.stderr
