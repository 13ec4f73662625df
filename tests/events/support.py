"""Shared pieces of the domain event tests: events made by hand, reading the table, waiting on it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from tasker.model.events import DomainEvent
from tasker.model.ids import uuid7
from tasker.store.db import Connection
from tasker.store.templates import template_register_paths

TEMPLATES = Path(__file__).resolve().parent / "templates"
NAMESPACE = "domain_events"


async def register_event_templates(conn: Connection) -> None:
    await template_register_paths(conn, TEMPLATES)


def event(name: str, *, namespace: str = NAMESPACE, task_uuid: UUID | None = None, step_uuid: UUID | None = None,
          delivery_mode: Any = "durable") -> DomainEvent:  # fmt: skip
    event_uuid = uuid7()
    return DomainEvent(
        event_uuid=event_uuid,
        name=name,
        namespace=namespace,
        task_uuid=task_uuid or uuid4(),
        step_uuid=step_uuid or uuid4(),
        step_name="a_step",
        condition="success",
        outcome="success",
        delivery_mode=delivery_mode,
        payload={"event_id": str(event_uuid), "event_name": name},
    )


async def rows(conn: Connection, where: str = "true", params: Any = None) -> list[dict[str, Any]]:
    """Every stored event (ignoring the read horizon), oldest first."""
    query = f"SELECT * FROM tasker_ext.domain_events WHERE {where} ORDER BY txid, event_uuid"
    return list(await (await conn.execute(query, params)).fetchall())


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds (generous: the machine is busy)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
