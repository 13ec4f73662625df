"""Schedules: cron expressions that create tasks, fired exactly once per tick by whichever orchestrator gets there.

Every orchestrator runs a :class:`Scheduler`. Firing a tick is one transaction: lock the due schedule row (``FOR
UPDATE SKIP LOCKED``), create the task through the same path as ``POST /v1/tasks`` (a savepoint inside it), record
the run and advance ``next_run_at``. A competing orchestrator skips the locked row, or re-reads it after the commit
and finds it no longer due; ``UNIQUE (schedule_uuid, scheduled_for)`` on the runs and the tick's idempotency key on
the task back that up. A crash before the commit rolls everything back and the tick fires again.

Ticks missed while no orchestrator ran are folded into one catch-up task for the latest of them (the run's
``missed_since`` says since when), not replayed one by one. Schedulers sleep until the earliest ``next_run_at``
(by the database's clock) and are woken by a NOTIFY when schedules change; a bounded sleep backs the NOTIFY up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from tasker.engine.task_requests import check_request, create_task
from tasker.errors import NotFoundError, TaskerError
from tasker.messaging.router import SCHEDULES_CHANNEL
from tasker.messaging.transport import Transport
from tasker.model.schedules import ScheduleSpec, Tick, next_tick, plan_tick, tick_idempotency_key
from tasker.store.db import Connection
from tasker.store.schedules import (
    schedule_claim_due,
    schedule_delete,
    schedule_fired,
    schedule_get,
    schedule_insert,
    schedule_list,
    schedule_next_due,
    schedule_set_enabled,
)

log = logging.getLogger("tasker.schedules")

SPEC_FIELDS = tuple(ScheduleSpec.model_fields)


def _now() -> datetime:
    return datetime.now(UTC)


def spec_of(row: dict[str, Any]) -> ScheduleSpec:
    """The spec a stored schedule row holds."""
    return ScheduleSpec.model_validate({name: row[name] for name in SPEC_FIELDS})


# ---------------------------------------------------------------------------------------------------------------
# Managing schedules (CLI, API)
# ---------------------------------------------------------------------------------------------------------------


async def add_schedule(conn: Connection, spec: ScheduleSpec, *, env: str) -> dict[str, Any]:
    """Check the schedule as a tick would (cron, time zone, template, context against its input schema) and
    store it; raises a typed error and writes nothing when any check fails or the name is taken."""
    checked = spec.checked()
    await check_request(conn, checked.task_request(idempotency_key="check"), env=env)
    values = {**checked.model_dump(), "next_run_at": next_tick(checked.cron, checked.timezone, _now())}
    return await schedule_insert(conn, values, channel=SCHEDULES_CHANNEL)


async def remove_schedule(conn: Connection, name: str) -> None:
    if not await schedule_delete(conn, name, channel=SCHEDULES_CHANNEL):
        raise NotFoundError(f"no schedule named {name!r}", name=name)


async def set_schedule_enabled(conn: Connection, name: str, enabled: bool) -> dict[str, Any]:
    """Enable (the next tick from now on: ticks that passed while disabled do not fire) or disable a schedule."""
    async with conn.transaction():
        row = await schedule_get(conn, name)
        if row is None:
            raise NotFoundError(f"no schedule named {name!r}", name=name)
        following = next_tick(row["cron"], row["timezone"], _now()) if enabled and not row["enabled"] else None
        changed = await schedule_set_enabled(conn, name, enabled, following, channel=SCHEDULES_CHANNEL)
    assert changed is not None
    return changed


async def list_schedules(conn: Connection) -> list[dict[str, Any]]:
    return await schedule_list(conn)


# ---------------------------------------------------------------------------------------------------------------
# Firing ticks (every orchestrator)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fired:
    """One tick fired: the task it created, or why none was."""

    name: str
    scheduled_for: datetime
    missed_since: datetime | None
    task_uuid: UUID | None
    error: str | None


async def fire_next_due(
    conn: Connection, transport: Transport, *, env: str, processor_uuid: UUID | None = None
) -> Fired | None:
    """Fire the most overdue schedule no other orchestrator is firing, in one transaction; None when none is due.

    A tick whose task is refused (the template was removed, the context no longer matches its schema) is recorded
    with the error and the schedule moves on: the next tick would be refused the same way, not retried forever.
    """
    async with conn.transaction():
        row = await schedule_claim_due(conn)
        if row is None:
            return None
        try:
            tick = plan_tick(row["cron"], row["timezone"], row["next_run_at"], row["db_now"])
        except TaskerError as exc:  # an expression edited by hand into something invalid
            log.error("schedule %s disabled: %s", row["name"], exc.message)
            await schedule_set_enabled(conn, row["name"], False, None, channel=SCHEDULES_CHANNEL)
            return Fired(row["name"], row["next_run_at"], None, None, exc.message)
        task_uuid, error = await _create(conn, transport, row, tick, env=env, processor_uuid=processor_uuid)
        await schedule_fired(
            conn,
            schedule_uuid=row["schedule_uuid"],
            scheduled_for=tick.scheduled_for,
            missed_since=tick.missed_since,
            next_run_at=tick.next_run_at,
            task_uuid=task_uuid,
            error=error,
            processor_uuid=processor_uuid,
        )
    if tick.missed_since is not None:
        log.warning(
            "schedule %s missed its ticks since %s: one catch-up task for %s",
            row["name"],
            tick.missed_since.isoformat(),
            tick.scheduled_for.isoformat(),
        )
    return Fired(row["name"], tick.scheduled_for, tick.missed_since, task_uuid, error)


async def _create(
    conn: Connection, transport: Transport, row: dict[str, Any], tick: Tick, *, env: str, processor_uuid: UUID | None
) -> tuple[UUID | None, str | None]:
    """Create the tick's task (a savepoint: a refusal leaves the run to be recorded); (task, None) or (None, why)."""
    about = {
        "name": row["name"],
        "schedule_uuid": str(row["schedule_uuid"]),
        "scheduled_for": tick.scheduled_for.isoformat(),
        "missed_since": tick.missed_since.isoformat() if tick.missed_since else None,
    }
    try:
        request = spec_of(row).task_request(
            idempotency_key=tick_idempotency_key(row["schedule_uuid"], tick.scheduled_for),
            requested_at=tick.scheduled_for,
            options={"schedule": about},
        )
        created = await create_task(conn, transport, request, env=env, processor_uuid=processor_uuid)
    except TaskerError as exc:
        log.warning("schedule %s: no task for %s: %s", row["name"], tick.scheduled_for.isoformat(), exc.message)
        return None, exc.message
    except ValidationError as exc:
        return None, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return created.task_uuid, None


class Scheduler:
    """An orchestrator's schedule loop: fire what is due, then sleep until the next due time or a change."""

    def __init__(
        self,
        connection: Callable[[], AbstractAsyncContextManager[Connection]],
        transport: Transport,
        *,
        env: str,
        processor_uuid: UUID | None = None,
        max_sleep_seconds: float = 30.0,
        busy_sleep_seconds: float = 0.25,
        per_pass: int = 100,
    ) -> None:
        self._connection = connection
        self._transport = transport
        self._env = env
        self._processor_uuid = processor_uuid
        self._max_sleep = max_sleep_seconds  # backs up a NOTIFY lost while the listener reconnected
        self._busy_sleep = busy_sleep_seconds  # due, but held by another orchestrator: look again shortly
        self._per_pass = per_pass
        self._wake = asyncio.Event()
        self.fired = 0

    def wake(self, _payload: str = "") -> None:
        """Recompute the sleep now (a schedule changed); a Wakeups signal callback."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Fire and sleep until ``stop`` is set. Errors are logged and retried after a short sleep."""
        while not stop.is_set():
            self._wake.clear()
            try:
                delay = await self._pass()
            except Exception:
                log.exception("firing schedules failed")
                delay = 1.0
            await _first_of(stop, self._wake, delay)

    async def _pass(self) -> float:
        """Fire due schedules (up to ``per_pass``); the seconds to sleep before the next pass."""
        fired = 0
        async with self._connection() as conn:
            while fired < self._per_pass:
                found = await fire_next_due(conn, self._transport, env=self._env, processor_uuid=self._processor_uuid)
                if found is None:
                    break
                fired += 1
            self.fired += fired
            seconds = await schedule_next_due(conn)
        if fired >= self._per_pass:
            return 0.0
        if seconds is None:
            return self._max_sleep
        if seconds <= 0:  # due but locked: another orchestrator is firing it right now
            return self._busy_sleep
        return min(seconds, self._max_sleep)


async def _first_of(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """Sleep until ``stop`` or ``wake`` is set, or ``timeout`` seconds pass."""
    if timeout <= 0:
        return
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
