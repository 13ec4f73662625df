"""Leases of running steps, renewed from a thread of their own, and a watchdog on the worker's event loop.

A claimed step's lease is its message's visibility timeout. Renewed on the worker's event loop, it would stop the
moment an async handler blocks that loop (``time.sleep``, blocking I/O, a long computation): the lease runs out, a
second worker takes the step over and the handler runs twice while the first is still at it. So the leases are
renewed here, on a thread with its own event loop and its own connection, which nothing on the worker's loop can
starve; and the same thread warns loudly when the worker's loop has not run for a while, naming what is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from uuid import UUID

from tasker.messaging.transport import Transport
from tasker.store.db import Connection, connect

log = logging.getLogger("tasker.worker")

TICK_SECONDS = 0.1


@dataclass
class Lease:
    """One running step's message and how long it is known to stay hidden (``deadline``, time.monotonic())."""

    queue: str
    msg_id: int
    label: str
    deadline: float


class LeaseKeeper:
    """Renews the leases it holds every third of a lease, and watches the event loop that calls :meth:`beat`."""

    def __init__(
        self,
        url: str,
        transport: Transport,
        *,
        lease_seconds: int,
        stall_warning_seconds: float = 2.0,
        application_name: str = "tasker-worker-leases",
    ) -> None:
        self._url = url
        self._transport = transport
        self._lease_seconds = lease_seconds
        self._interval = max(lease_seconds / 3, 0.2)
        self._stall_warning = stall_warning_seconds
        self._application_name = application_name
        self._leases: dict[UUID, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._beat = time.monotonic()
        self._stalled = False
        self.renewals = 0

    # --- called from the worker's loop ---------------------------------------------------------------------------

    def hold(self, step_uuid: UUID, queue: str, msg_id: int, label: str, received_at: float) -> Lease:
        """Keep renewing this step's lease; it was taken (its message received) at ``received_at``."""
        lease = Lease(queue, msg_id, label, received_at + self._lease_seconds)
        with self._lock:
            self._leases[step_uuid] = lease
        return lease

    def release(self, step_uuid: UUID) -> None:
        with self._lock:
            self._leases.pop(step_uuid, None)

    async def heartbeat(self) -> None:
        """Run on the worker's loop: proves to the watchdog that the loop is turning."""
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)

    def start(self) -> None:
        self._beat = time.monotonic()
        self._thread = threading.Thread(target=self._main, name="tasker-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # --- the keeper's own thread ---------------------------------------------------------------------------------

    def _main(self) -> None:
        asyncio.run(self._keep())

    async def _keep(self) -> None:
        conn: Connection | None = None
        next_renewal = time.monotonic() + self._interval
        try:
            while not self._stop.is_set():
                await asyncio.sleep(TICK_SECONDS)
                self._watch()
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + self._interval
                    conn = await self._renew(conn)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def _renew(self, conn: Connection | None) -> Connection | None:
        """Push back every held lease; returns the connection to use next time (None after a failure)."""
        with self._lock:
            held = list(self._leases.values())
        if not held:
            return conn
        by_queue: dict[str, list[int]] = {}
        for lease in held:
            by_queue.setdefault(lease.queue, []).append(lease.msg_id)
        started = time.monotonic()
        try:
            if conn is None or conn.closed:
                conn = await connect(self._url, application_name=self._application_name)
            for queue, ids in by_queue.items():
                await self._transport.extend_many(conn, queue, ids, seconds=self._lease_seconds)
        except Exception as exc:
            log.warning("renewing %d lease(s) failed (%s); retrying in %.1f s", len(held), exc, self._interval)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            return None
        for lease in held:
            lease.deadline = started + self._lease_seconds
        self.renewals += 1
        log.debug("renewed %d leases in %.1f ms", len(held), (time.monotonic() - started) * 1000)
        return conn

    def _watch(self) -> None:
        """Warn once when the worker's loop stops turning, and again when it turns again."""
        lag = time.monotonic() - self._beat
        if lag >= self._stall_warning and not self._stalled:
            self._stalled = True
            with self._lock:
                running = ", ".join(lease.label for lease in self._leases.values()) or "nothing"
            log.warning(
                "the worker's event loop has been blocked for %.1f s: an async handler is doing blocking work "
                "(time.sleep, blocking I/O or a long computation; use a sync handler or asyncio.to_thread). Leases "
                "are still renewed, but no other step, result or cancellation moves until it returns. Running: %s",
                lag,
                running,
            )
        elif lag < self._stall_warning and self._stalled:
            self._stalled = False
            log.warning("the worker's event loop runs again after a stall")
