"""Wake-ups survive the loss of their LISTEN connection: the listener reconnects, LISTENs on every channel again,
and a later NOTIFY reaches both a queue's event and a signal's callback."""

from __future__ import annotations

import asyncio

from psycopg import sql

from tasker.messaging.router import channel
from tasker.messaging.wakeup import Wakeups
from tasker.store.db import Connection
from tests.worker.support import until

QUEUE = "worker_wakeup_checks_queue"
SIGNAL = "tasker_wakeup_checks_signal"


async def _listener_pids(conn: Connection) -> list[int]:
    rows = await (
        await conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND query ILIKE 'LISTEN%'"
        )
    ).fetchall()
    return [row["pid"] for row in rows]


async def test_wakeups_reconnect_after_their_connection_is_killed(conn: Connection, db_url: str) -> None:
    payloads: list[str] = []
    wakeups = Wakeups(db_url, [QUEUE], signals={SIGNAL: payloads.append})
    await wakeups.start()
    try:
        [pid] = await _listener_pids(conn)
        await conn.execute("SELECT pg_terminate_backend(%s)", [pid])

        async def signal_arrives() -> bool:  # NOTIFY until one arrives: then the listener is back and LISTENing
            await conn.execute(sql.SQL("NOTIFY {}, 'again'").format(sql.Identifier(SIGNAL)))
            await asyncio.sleep(0.2)
            return "again" in payloads

        await until(signal_arrives, timeout=60, what="a signal after the reconnect")
        assert pid not in await _listener_pids(conn)
        wakeups.clear(QUEUE)
        await conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(channel(QUEUE))))
        assert await wakeups.wait(QUEUE, 60), "a NOTIFY on the queue's channel woke its consumer"
    finally:
        await wakeups.stop()
