"""GET /v1/events over real HTTP with auth on: filters, cursor paging, bad input, permissions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tasker.config import ApiKey
from tasker.store.db import connect
from tasker.store.events import domain_event_insert_many
from tests.api.server import serving
from tests.events.support import event

READER = {"X-API-Key": "events-reader"}
OTHER = {"X-API-Key": "tasks-reader"}
TASK = uuid.uuid4()
NAMES = ["order.created", "order.shipped", "payment.done", "order.item.added", "invoice.sent"]


@pytest.fixture
def api(db_url: str) -> Iterator[str]:
    async def insert() -> None:
        conn = await connect(db_url)
        try:
            for name in NAMES:
                await domain_event_insert_many(conn, [event(name, task_uuid=TASK if "order" in name else None)])
            await domain_event_insert_many(conn, [event("order.created", namespace="other_ns")])
        finally:
            await conn.close()

    asyncio.run(insert())
    keys = [
        ApiKey(key="events-reader", permissions=["events:read"]),
        ApiKey(key="tasks-reader", permissions=["tasks:*"]),
    ]
    with serving(db_url, auth_enabled=True, api_keys=keys) as base:
        yield base


def _get(base: str, headers: dict[str, str] | None = None, **params: object) -> httpx.Response:
    return httpx.get(f"{base}/v1/events", params=params, headers=headers if headers is not None else READER, timeout=30)


def _all(base: str) -> list[str]:
    """Every event, once the inserts are past the read horizon (other transactions on the server can hold it)."""
    for _ in range(600):
        body = _get(base, limit=1000).json()
        if body["count"] == len(NAMES) + 1:
            return [e["name"] for e in body["events"]]
        time.sleep(0.05)
    raise AssertionError("the events never became visible")


def test_filters_and_cursor_paging(api: str) -> None:
    assert _all(api) == [*NAMES, "order.created"]
    names = [e["name"] for e in _get(api, name="order.*", namespace="domain_events").json()["events"]]
    assert names == ["order.created", "order.shipped", "order.item.added"]
    two = _get(api, name=["payment.done", "invoice.*"]).json()
    assert [e["name"] for e in two["events"]] == ["payment.done", "invoice.sent"]
    assert [e["name"] for e in _get(api, task_uuid=str(TASK)).json()["events"]] == [
        "order.created", "order.shipped", "order.item.added"]  # fmt: skip
    assert _get(api, name="order.created").json()["count"] == 2  # exact name, both namespaces

    seen: list[str] = []
    after = None
    while True:
        page = _get(api, limit=2, **({"after": after} if after else {})).json()
        seen += [e["name"] for e in page["events"]]
        if not page["has_more"]:
            break
        after = page["next_after"]
    assert seen == [*NAMES, "order.created"]
    first = _get(api, limit=1).json()["events"][0]
    assert first["payload"]["event_id"] == first["event_uuid"] and first["created_at"].endswith("Z")


def test_bad_input_is_a_400_naming_the_problem(api: str) -> None:
    unknown = _get(api, after=str(uuid.uuid4()))
    assert unknown.status_code == 400 and "no event has the id" in unknown.json()["error"]["message"]
    assert _get(api, after="not-a-uuid").status_code == 400
    assert _get(api, limit=0).status_code == 400
    assert _get(api, limit=5000).status_code == 400
    empty = _get(api, name="")
    assert empty.status_code == 400 and "pattern" in empty.json()["error"]["message"]


def test_events_need_the_events_read_permission(api: str) -> None:
    assert _get(api, headers={}).status_code == 401
    forbidden = _get(api, headers=OTHER)
    assert forbidden.status_code == 403 and "events:read" in forbidden.json()["error"]["message"]
    assert _get(api).status_code == 200
