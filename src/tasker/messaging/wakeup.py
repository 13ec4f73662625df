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
    """LISTEN on the channels of some queues and set an event per queue when a notification arrives."""

    def __init__(
        self, url: str, queues: Iterable[str], signals: dict[str, Callable[[str], None]] | None = None
    ) -> None:
        self._url = url
        self._events = {channel(q): asyncio.Event() for q in queues}
        self._by_queue = {q: self._events[channel(q)] for q in queues}
        self._signals = dict(signals or {})  # other channels whose payload matters (e.g. task cancelled)
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._conn = await connect(self._url)
        for name in [*self._events, *self._signals]:
            await self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
        self._task = asyncio.create_task(self._listen(), name="tasker-wakeups")

    async def _listen(self) -> None:
        assert self._conn is not None
        try:
            async for note in self._conn.notifies():
                event = self._events.get(note.channel)
                if event is not None:
                    event.set()
                elif note.channel in self._signals:
                    self._signals[note.channel](note.payload)
        except asyncio.CancelledError:
            raise
        except Exception:  # connection lost: fall back to polling; wake everyone so nobody sleeps long
            log.warning("wake-up listener lost its connection; relying on polling", exc_info=True)
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
        if self._conn is not None:
            await self._conn.close()
