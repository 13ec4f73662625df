"""The outbox sender: publishes the messages that committed transactions left in ``tasker_ext.outbox``.

Every process that sends with the RabbitMQ transport runs one. A batch is taken with ``FOR UPDATE SKIP LOCKED``
(senders in other processes take other rows), published with publisher confirms, deleted, and committed: a sender
killed anywhere in between leaves the rows locked only until its connection closes, and the next sender publishes
them again. Publishing is therefore at least once; consumers already tolerate duplicates (see README).

Idle costs nothing but a slow poll: the statements that write the outbox NOTIFY its channel at commit (signal
only), and the transport wakes its own sender when it sees its transaction commit. A batch that filled up is
followed by the next at once; a delayed row (a message handed back with a delay) makes the sender sleep until it
is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from tasker.messaging.router import OUTBOX_QUEUE
from tasker.messaging.wakeup import Wakeups
from tasker.store.db import Connection, connect
from tasker.store.outbox import OutboxRow, outbox_delete_many, outbox_next_due, outbox_take_many

log = logging.getLogger("tasker.outbox")

Publish = Callable[[Sequence[OutboxRow]], Awaitable[None]]


class OutboxSender:
    def __init__(
        self,
        database_url: str,
        publish: Publish,
        *,
        batch_size: int = 200,
        fallback_poll_seconds: float = 5.0,
        retry_seconds: float = 1.0,
    ) -> None:
        self._url = database_url
        self._publish = publish
        self._batch_size = batch_size
        self._fallback = fallback_poll_seconds
        self._retry = retry_seconds
        self._wakeups = Wakeups(database_url, [OUTBOX_QUEUE], application_name="tasker-outbox-wakeups")
        self._conn: Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.published = 0

    async def start(self) -> None:
        self._stopping = False
        await self._wakeups.start()
        self._task = asyncio.create_task(self._run(), name="tasker-outbox-sender")

    def kick(self) -> None:
        """Look at the outbox now (this process committed rows)."""
        self._wakeups.notify_local(OUTBOX_QUEUE)

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeups.clear(OUTBOX_QUEUE)
            try:
                if await self.drain_once() >= self._batch_size:
                    continue  # more may be waiting
                timeout = await self._until_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker or the database is away: the rows wait in the outbox
                if self._stopping:  # a cancellation that a library turned into an error
                    return
                log.warning(
                    "outbox: publishing failed (%s: %s); retrying in %.1f s", type(exc).__name__, exc, self._retry
                )
                await self._drop_connection()
                timeout = self._retry
            await self._wakeups.wait(OUTBOX_QUEUE, timeout)

    async def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self._url, application_name="tasker-outbox-sender")
        return self._conn

    async def drain_once(self) -> int:
        """Publish one batch of due rows and delete them, in one transaction; returns how many went out."""
        conn = await self._connection()
        async with conn.transaction():
            rows = await outbox_take_many(conn, self._batch_size)
            if rows:
                await self._publish(rows)
                await outbox_delete_many(conn, [r.outbox_uuid for r in rows])
        self.published += len(rows)
        return len(rows)

    async def _until_due(self) -> float:
        """How long to sleep: until the earliest delayed row, at most the fallback poll; a short pause when rows
        are due but locked by another sender (it is publishing them)."""
        due = await outbox_next_due(await self._connection())
        if due is None:
            return self._fallback
        return min(max(due, 0.05), self._fallback)

    async def flush(self, timeout: float) -> None:
        """Publish what is due now (best effort, bounded): a short-lived process's last sends. The loop is stopped
        first: the two must not share the connection."""
        await self._stop_loop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                while await self.drain_once() >= self._batch_size:
                    pass

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _stop_loop(self) -> None:
        """Stop the loop, bounded: the flag ends it even where a library swallows the cancellation."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=10)
            if not self._task.done():
                log.warning("outbox: the sender did not stop within 10 s")
            self._task = None

    async def stop(self) -> None:
        await self._stop_loop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeups.stop(), 10)
        await self._drop_connection()
