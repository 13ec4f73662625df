"""Wake-ups: one LISTEN connection per process, fanned out to one event per queue, with an idle poll behind it.

Consumers use :meth:`Wakeups.wait` like this, which cannot lose a wake-up: the event is cleared *before* the fetch,
so a notification that arrives while fetching leaves it set and the next wait returns at once.

    wakeups.clear(queue)
    messages = await fetch()
    if not messages:
        await wakeups.wait(queue, idle_poll)

The poll interval backs off while idle (``IdleBackoff``) so an idle process costs the database a query every few
seconds; the poll also catches messages whose visibility timeout ran out (a dead worker's lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

from psycopg import sql

from tasker.messaging.router import channel
from tasker.store.db import Connection, connect

log = logging.getLogger("tasker.wakeup")


class IdleBackoff:
    """Poll interval that doubles while nothing is found and snaps back after work."""

    def __init__(self, minimum: float = 0.05, maximum: float = 2.0) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.current = minimum

    def found_work(self) -> None:
        self.current = self.minimum

    def idle(self) -> float:
        interval = self.current
        self.current = min(self.current * 2, self.maximum)
        return interval


class Wakeups:
    """LISTEN on the channels of some queues and set an event per queue when a notification arrives.

    The LISTEN connection is kept alive: when it is lost (a database restart, a killed backend) the listener
    reconnects with backoff and LISTENs on every channel again. Notifications sent while it was away are lost, so
    every event is set on each failed attempt and once more after reconnecting: consumers poll meanwhile and look
    again once listening resumes, instead of sleeping through work. A connection that stays silent is probed every
    ``probe_seconds``, so one that died without telling us is noticed too.
    """

    def __init__(
        self,
        url: str,
        queues: Iterable[str],
        signals: dict[str, Callable[[str], None]] | None = None,
        *,
        application_name: str = "tasker-wakeups",
        probe_seconds: float = 30.0,
        reconnect_backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        self._url = url
        self._events = {channel(q): asyncio.Event() for q in queues}
        self._by_queue = {q: self._events[channel(q)] for q in queues}
        self._signals = dict(signals or {})  # other channels whose payload matters (e.g. task cancelled)
        self._application_name = application_name
        self._probe_seconds = probe_seconds
        self._backoff = reconnect_backoff
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.reconnects = 0

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up (False while reconnecting)."""
        return self._conn is not None and not self._conn.closed

    async def start(self) -> None:
        """Connect and LISTEN (raising when the database is unreachable now), then keep listening in the background."""
        self._conn = await self._listening_connection()
        self._task = asyncio.create_task(self._run(), name="tasker-wakeups")

    async def _listening_connection(self) -> Connection:
        conn = await connect(self._url, application_name=self._application_name)
        try:
            for name in [*self._events, *self._signals]:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection is gone: poll meanwhile, reconnect with backoff
                log.warning("wake-up listener lost its connection (%s); polling while it reconnects", exc)
            await self._drop_connection()
            self._conn = await self._reconnect()
            self.reconnects += 1
            channels = len(self._events) + len(self._signals)
            log.info("wake-up listener reconnected; listening on %d channels again", channels)
            self._wake_all()  # notifications sent while away are lost: everyone looks once

    async def _listen(self) -> None:
        assert self._conn is not None
        while True:
            async for note in self._conn.notifies(timeout=self._probe_seconds):
                event = self._events.get(note.channel)
                if event is not None:
                    event.set()
                elif note.channel in self._signals:
                    self._signal(note.channel, note.payload)
            await self._conn.execute("SELECT 1")  # silent for a while: is the connection still there?

    def _signal(self, name: str, payload: str) -> None:
        try:
            self._signals[name](payload)
        except Exception:  # a failing callback must not cost the listener its connection
            log.exception("wake-up signal %s: its callback failed", name)

    async def _reconnect(self) -> Connection:
        delay, maximum = self._backoff
        while True:
            self._wake_all()
            try:
                return await self._listening_connection()
            except Exception as exc:
                log.debug("wake-up listener: reconnecting failed (%s); next try in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, maximum)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _wake_all(self) -> None:
        for event in self._events.values():
            event.set()

    def clear(self, queue: str) -> None:
        self._by_queue[queue].clear()

    def notify_local(self, queue: str) -> None:
        """Wake this process's own consumer of ``queue`` (used after it sent to itself)."""
        self._by_queue[queue].set()

    async def wait(self, queue: str, timeout: float) -> bool:
        """Sleep until ``queue`` is signalled or ``timeout`` passes; True when signalled."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._by_queue[queue].wait(), timeout)
            return True
        return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._drop_connection()
