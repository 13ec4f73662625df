"""The default transport: PGMQ queues in the same PostgreSQL database as the state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb

from tasker.messaging.router import channel
from tasker.messaging.transport import Message
from tasker.store.db import Connection, Pending
from tasker.store.queries import Q, on_table
from tasker.store.steps import (
    Continuation,
    HeldMessage,
    StoredResults,
    step_claim_from_queue,
    step_claim_kept_send,
    step_result_store_many,
)
from tasker.store.tasks import Delivery, task_advance_many
from tasker.store.transitions import StepChange, TaskChange


class PgmqTransport:
    """Sends join the caller's transaction; acknowledgement deletes the message."""

    def __init__(self) -> None:
        self._known_queues: set[str] = set()

    def _on_table(self, name: str, queue: str) -> bytes:
        """A named statement written against one queue's table (a plan the server keeps, unlike pgmq's calls)."""
        return on_table(name, "queue_table", f"q_{queue}")

    async def ensure_queue(self, conn: Connection, queue: str) -> None:
        """Create the queue unless it is known to exist. Only a queue seen committed is remembered: one created in
        the caller's transaction may still be rolled back."""
        if queue in self._known_queues:
            return
        row = await (await conn.execute(Q["queue_exists"], {"queue": queue})).fetchone()
        if row is not None and row["present"]:
            self._known_queues.add(queue)
            return
        await conn.execute(Q["queue_create"], {"queue": queue})

    async def send_many(self, conn: Connection, queue: str, bodies: Sequence[dict[str, Any]]) -> None:
        if bodies:
            await self.ensure_queue(conn, queue)  # a query the first time only
            # no fetch: in pipeline mode the send rides along with the caller's other statements
            await conn.execute(
                self._on_table("queue_send_many", queue),
                {"channel": channel(queue), "messages": [Jsonb(b) for b in bodies]},
            )

    async def receive(
        self, conn: Connection, queue: str, *, max_messages: int, visibility_seconds: int
    ) -> list[Message]:
        read = self._on_table("queue_read", queue)
        rows = await (await conn.execute(read, {"vt": visibility_seconds, "qty": max_messages})).fetchall()
        return [Message(r["msg_id"], queue, r["message"], r["read_ct"]) for r in rows]

    async def receive_and_claim(
        self,
        conn: Connection,
        queue: str,
        *,
        max_messages: int,
        visibility_seconds: int,
        metadata: dict[str, str],
    ) -> list[dict[str, Any]]:
        return await step_claim_from_queue(
            conn,
            queue,
            max_messages=max_messages,
            visibility_seconds=visibility_seconds,
            metadata=metadata,
        )

    async def claim_kept(
        self, conn: Connection, queue: str, kept: Sequence[tuple[UUID, UUID, str]], *, visibility_seconds: int
    ) -> Pending[list[dict[str, Any]]]:
        return await step_claim_kept_send(
            conn, queue, kept, visibility_seconds=visibility_seconds, channel=channel(queue)
        )

    async def ack_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        if msg_ids:
            await conn.execute(Q["queue_delete_many"], {"queue": queue, "msg_ids": list(msg_ids)})

    async def nack_many(
        self, conn: Connection, queue: str, msg_ids: Sequence[int], *, delay_seconds: float = 0.0
    ) -> None:
        if msg_ids:
            delay = self._on_table("queue_delay_many", queue)
            await conn.execute(delay, {"msg_ids": list(msg_ids), "delay": delay_seconds})

    async def record_failure(
        self, conn: Connection, queue: str, msg_id: int, *, error: str, delay_seconds: float
    ) -> int:
        record = self._on_table("queue_record_failure", queue)
        row = await (await conn.execute(record, {"msg_id": msg_id, "error": error, "delay": delay_seconds})).fetchone()
        return int(row["failures"]) if row else 0

    async def dead_letter_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        if msg_ids:
            await conn.execute(Q["queue_archive_many"], {"queue": queue, "msg_ids": list(msg_ids)})

    async def extend_many(self, conn: Connection, queue: str, msg_ids: Sequence[int], *, seconds: int) -> None:
        if msg_ids:
            await conn.execute(Q["queue_set_vt_many"], {"queue": queue, "msg_ids": list(msg_ids), "vt": seconds})

    async def depth(self, conn: Connection, queue: str) -> int:
        row = await (await conn.execute(Q["queue_depth"], {"queue": queue})).fetchone()
        return int(row["depth"]) if row else 0

    def on_message(self, queue: str, wake: Callable[[], None]) -> None:
        """Nothing: a send NOTIFYs the queue's channel, which wakes the receive loop (messaging.wakeup)."""

    async def close(self) -> None:
        """Nothing to release: PGMQ lives in the caller's database."""

    async def advance(
        self,
        conn: Connection,
        *,
        enqueue: Sequence[StepChange],
        deliveries: Sequence[Delivery],
        moves: Sequence[TaskChange],
        ack_queue: str,
        ack_ids: Sequence[int],
    ) -> None:
        """One statement: the state changes and the PGMQ sends and deletes commit together."""
        for queue in {d.queue for d in deliveries}:
            await self.ensure_queue(conn, queue)
        await task_advance_many(
            conn, enqueue=enqueue, deliveries=deliveries, moves=moves, ack_queue=ack_queue, ack_ids=ack_ids
        )

    async def store_results(
        self,
        conn: Connection,
        results: Sequence[StepChange],
        held: Sequence[HeldMessage],
        *,
        results_queue: str,
        lock_tasks: Sequence[UUID | None] = (),
        completions: Sequence[StepChange | None] = (),
        continuation: Continuation | None = None,
        moved_on_only: bool = False,
    ) -> Pending[StoredResults]:
        """One statement: the store, the announcements, the acknowledgements, the completions and the continuation."""
        return await step_result_store_many(
            conn,
            results,
            held,
            results_queue=results_queue,
            results_channel=channel(results_queue),
            lock_tasks=lock_tasks,
            completions=completions,
            continuation=continuation,
            moved_on_only=moved_on_only,
        )
