"""The default transport: PGMQ queues in the same PostgreSQL database as the state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from tasker.messaging.router import channel
from tasker.messaging.transport import Message
from tasker.store.db import Connection
from tasker.store.queries import Q


class PgmqTransport:
    """Sends join the caller's transaction; acknowledgement deletes the message."""

    def __init__(self) -> None:
        self._known_queues: set[str] = set()

    async def ensure_queue(self, conn: Connection, queue: str) -> None:
        if queue not in self._known_queues:
            await conn.execute(Q["queue_create"], {"queue": queue})
            self._known_queues.add(queue)

    async def send_many(self, conn: Connection, queue: str, bodies: Sequence[dict[str, Any]]) -> list[int]:
        if not bodies:
            return []
        row = await (
            await conn.execute(
                Q["queue_send_many"],
                {"queue": queue, "channel": channel(queue), "messages": [Jsonb(b) for b in bodies]},
            )
        ).fetchone()
        return list(row["msg_ids"] or []) if row else []

    async def receive(
        self, conn: Connection, queue: str, *, max_messages: int, visibility_seconds: int
    ) -> list[Message]:
        rows = await (
            await conn.execute(Q["queue_read"], {"queue": queue, "vt": visibility_seconds, "qty": max_messages})
        ).fetchall()
        return [Message(r["msg_id"], queue, r["message"], r["read_ct"]) for r in rows]

    async def ack_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        if msg_ids:
            await conn.execute(Q["queue_delete_many"], {"queue": queue, "msg_ids": list(msg_ids)})

    async def nack_many(self, conn: Connection, queue: str, msg_ids: Sequence[int], *, delay_seconds: int = 0) -> None:
        if msg_ids:
            await conn.execute(Q["queue_set_vt_many"], {"queue": queue, "msg_ids": list(msg_ids), "vt": delay_seconds})

    async def extend_many(self, conn: Connection, queue: str, msg_ids: Sequence[int], *, seconds: int) -> None:
        if msg_ids:
            await conn.execute(Q["queue_set_vt_many"], {"queue": queue, "msg_ids": list(msg_ids), "vt": seconds})

    async def depth(self, conn: Connection, queue: str) -> int:
        row = await (await conn.execute(Q["queue_depth"], {"queue": queue})).fetchone()
        return int(row["depth"]) if row else 0
