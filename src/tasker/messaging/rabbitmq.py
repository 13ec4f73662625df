"""The RabbitMQ transport (``TASKER_TRANSPORT=rabbitmq``): the same queues and protocol as PGMQ, state in PostgreSQL.

Sending. The broker cannot join PostgreSQL's transaction, so every send made "in the caller's transaction"
(``send_many``, ``advance``, ``store_results``, a delayed ``nack_many``, ``record_failure``) writes rows to the
outbox (``tasker_ext.outbox``) in that transaction; :class:`~tasker.messaging.outbox.OutboxSender` publishes them
(persistent, publisher confirms) after the commit. A rollback sends nothing; a crash after the commit loses nothing.

Receiving. One consumer per queue pushes deliveries (manual acks, ``prefetch`` unacknowledged at most) into a buffer;
``receive`` hands out what is buffered (never waits) and wakes the process's receive loop through the callback
given to :meth:`on_message`. ``msg_id`` is a number of this transport's own, mapped to the delivery. ``read_count``
is 1 for a first delivery and more for a redelivery (the broker's ``redelivered`` flag, or the reads a delayed
re-send carries in its ``x-tasker-reads`` header), as the worker's redelivery checks expect.

Settling after commit. Acks (``ack_many``, the acks inside ``advance`` and ``store_results``) and dead-lettering must
not happen before the transaction that applied the message commits. Outside a transaction (autocommit: the
statement has committed) they go to the broker at once; inside one, the transaction's id is read and the settlement
waits until PostgreSQL reports it committed (``pg_xact_status``). An aborted transaction settles nothing: the
message stays held by this consumer, and the caller's error path decides (a failed result is re-sent with
``record_failure``; a worker retries its store).

The lease. A delivery is held until it is settled or the consumer's connection closes (the process died, or the
broker restarted), and then the broker delivers it again, to any consumer. Within a live process the lease is also
kept as PGMQ's visibility timeout is: ``receive`` gives each delivery a deadline ``visibility_seconds`` ahead,
``extend_many`` pushes it back (a local deadline only), and a delivery still unsettled past it is handed back to the
broker (requeued), so a message that an error path left alone is retried instead of held until the process ends.
The database claim fence (claim token, attempt) makes every redelivery harmless.
Delays (``nack_many`` with a delay, ``record_failure``) are a re-send through the outbox with a not-before time,
then an ack of the original after commit. Dead-lettering rejects the delivery without requeue, which the broker
routes through ``<queue>_dlx`` to ``<queue>_dlq`` (declared with every queue, as tasker-core's).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from pamqp.common import FieldTable
from psycopg.pq import TransactionStatus

from tasker.messaging.outbox import OutboxSender
from tasker.messaging.router import OUTBOX_QUEUE, broker_queue, channel, dead_letter_names
from tasker.messaging.transport import Message
from tasker.store.db import Connection, Pending, connect
from tasker.store.outbox import (
    OutboxMessage,
    OutboxRow,
    outbox_insert_many,
    outbox_insert_returning_many,
    outbox_redirect_many,
    outbox_step_result_store_many,
    outbox_task_advance_many,
    transaction_id_current,
    transaction_status_many,
)
from tasker.store.steps import Continuation, HeldMessage, StoredResults
from tasker.store.tasks import Delivery
from tasker.store.transitions import StepChange, TaskChange

log = logging.getLogger("tasker.rabbitmq")

READS_HEADER = "x-tasker-reads"
OUTBOX_CHANNEL = channel(OUTBOX_QUEUE)
Settlement = Literal["ack", "dead_letter", "requeue"]


@dataclass
class _Held:
    queue: str
    delivery: AbstractIncomingMessage
    body: dict[str, Any]
    read_count: int
    deadline: float = math.inf  # the lease: handed out by receive() until then (monotonic), renewed by extend_many
    settling: bool = False  # a settlement waits for its transaction: the lease no longer matters


@dataclass
class _Pending:
    """Settlements waiting for a transaction to commit."""

    xid: str
    ops: list[tuple[int, Settlement]] = field(default_factory=list)


class RabbitMqTransport:
    def __init__(
        self,
        database_url: str,
        rabbitmq_url: str,
        *,
        prefix: str = "",
        prefetch: int = 20,
        fallback_poll_seconds: float = 5.0,
        connection_name: str | None = None,
    ) -> None:
        self._database_url = database_url
        self._rabbitmq_url = rabbitmq_url
        self._prefix = prefix
        self._prefetch = prefetch
        self._fallback_poll = fallback_poll_seconds
        # how the broker lists this process's connection (rabbitmqctl list_connections, the management UI)
        self.connection_name = connection_name or f"tasker:{prefix}:{os.getpid()}"
        self._ids = itertools.count(1)
        self._held: dict[int, _Held] = {}
        self._buffers: dict[str, deque[Message]] = {}
        self._wakes: dict[str, Callable[[], None]] = {}
        self._declared: set[str] = set()
        self._consuming: dict[str, AbstractQueue] = {}
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._consumer: AbstractChannel | None = None
        self._broker_lock = asyncio.Lock()
        self._sender: OutboxSender | None = None
        self._sender_lock = asyncio.Lock()
        self._resent: dict[int, UUID] = {}  # failed deliveries re-sent through the outbox (record_failure)
        self._pending: list[_Pending] = []
        self._settle_wake = asyncio.Event()
        self._settler: asyncio.Task[None] | None = None
        self._settler_conn: Connection | None = None

    # --- the broker -------------------------------------------------------------------------------------------

    async def _channels(self) -> tuple[AbstractChannel, AbstractChannel]:
        """The publishing (confirms) and consuming (prefetch) channels; connected on first use, reconnected by
        aio-pika's robust connection (which also declares the queues and restarts the consumers again)."""
        async with self._broker_lock:
            if self._connection is None:
                self._connection = await aio_pika.connect_robust(
                    self._rabbitmq_url, client_properties={"connection_name": self.connection_name}
                )
                self._publisher = await self._connection.channel(publisher_confirms=True)
                self._consumer = await self._connection.channel()
                await self._consumer.set_qos(prefetch_count=self._prefetch)
            assert self._publisher is not None and self._consumer is not None
            return self._publisher, self._consumer

    async def _declare(self, chan: AbstractChannel, queue: str) -> AbstractQueue:
        """A durable queue with its dead-letter exchange and queue (``<q>_dlx`` → ``<q>_dlq``)."""
        name = broker_queue(self._prefix, queue)
        if queue.endswith("_dlq"):  # a dead-letter queue itself (a redirected outbox row): no nested DLX
            declared = await chan.declare_queue(name, durable=True)
            self._declared.add(queue)
            return declared
        dlx_name, dlq_name = dead_letter_names(name)
        dlx = await chan.declare_exchange(dlx_name, aio_pika.ExchangeType.DIRECT, durable=True)
        dlq = await chan.declare_queue(dlq_name, durable=True)
        await dlq.bind(dlx, routing_key=name)
        arguments: FieldTable = {"x-dead-letter-exchange": dlx_name, "x-dead-letter-routing-key": name}
        declared = await chan.declare_queue(name, durable=True, arguments=arguments)
        self._declared.add(queue)
        return declared

    async def ensure_queue(self, conn: Connection, queue: str) -> None:
        """Declare the queue, and start this process's sender: every process that uses queues publishes what the
        outbox holds, also rows that a process killed after its commit left behind."""
        await self._ensure_sender()
        if queue not in self._declared:
            publisher, _ = await self._channels()
            await self._declare(publisher, queue)

    async def _publish(self, rows: Sequence[OutboxRow]) -> None:
        """Publish a batch (the sender's callback): persistent, confirmed; queues declared before their first
        message, so nothing is dropped as unroutable."""
        publisher, _ = await self._channels()
        for queue in {r.queue for r in rows} - self._declared:
            await self._declare(publisher, queue)
        await asyncio.gather(
            *(
                publisher.default_exchange.publish(
                    aio_pika.Message(
                        json.dumps(row.body).encode(),
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        headers={READS_HEADER: row.reads},
                    ),
                    routing_key=broker_queue(self._prefix, row.queue),
                    mandatory=True,
                )
                for row in rows
            )
        )

    # --- the sender and the settler -----------------------------------------------------------------------------

    async def _ensure_sender(self) -> None:
        if self._sender is None:
            async with self._sender_lock:
                if self._sender is None:
                    sender = OutboxSender(self._database_url, self._publish, fallback_poll_seconds=self._fallback_poll)
                    await sender.start()
                    self._sender = sender

    async def _queued(self) -> None:
        """The caller wrote outbox rows: make sure this process sends, and send at once when they are committed."""
        await self._ensure_sender()

    async def _settle(self, conn: Connection, ops: list[tuple[int, Settlement]], *, sent: bool = False) -> None:
        """Settle deliveries once ``conn``'s work is committed (at once in autocommit)."""
        if not ops and not sent:
            return
        if conn.info.transaction_status == TransactionStatus.IDLE:
            await self._apply(ops)
            if sent and self._sender is not None:
                self._sender.kick()
            return
        xid = await transaction_id_current(conn)
        self._mark_settling(ops, True)
        self._pending.append(_Pending(xid, ops))
        if self._settler is None:
            self._settler = asyncio.create_task(self._settle_loop(), name="tasker-rabbitmq-settler")
        self._settle_wake.set()

    async def _settle_loop(self) -> None:
        while self._settler is not None:
            await self._settle_wake.wait()
            self._settle_wake.clear()
            delay = 0.002
            while self._pending:
                try:
                    await self._settle_committed()
                except Exception as exc:
                    log.warning("settling deliveries failed (%s); retrying", exc)
                    await self._drop_settler_connection()
                    delay = 0.5
                if self._pending:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.1)

    async def _settle_committed(self) -> None:
        """One look at the transactions waiting; those added meanwhile (while this awaited) wait for the next."""
        if self._settler_conn is None or self._settler_conn.closed:
            self._settler_conn = await connect(self._database_url, application_name="tasker-rabbitmq-settler")
        looked_at = list(self._pending)
        statuses = await transaction_status_many(self._settler_conn, [p.xid for p in looked_at])
        done: set[int] = set()
        for pending in looked_at:
            status = statuses.get(pending.xid)
            if status == "in progress":
                continue
            done.add(id(pending))
            if status == "committed":
                await self._apply(pending.ops)
                if self._sender is not None:
                    self._sender.kick()
            else:  # aborted (or unknown): nothing happened; the deliveries stay held for the caller's error path
                self._mark_settling(pending.ops, False)
        self._pending = [p for p in self._pending if id(p) not in done]

    def _mark_settling(self, ops: Sequence[tuple[int, Settlement]], settling: bool) -> None:
        for msg_id, _ in ops:
            held = self._held.get(msg_id)
            if held is not None:
                held.settling = settling

    async def _apply(self, ops: Sequence[tuple[int, Settlement]]) -> None:
        for msg_id, op in ops:
            held = self._held.pop(msg_id, None)
            if held is None:  # settled already (a retried store), or never ours
                continue
            try:
                if op == "ack":
                    await held.delivery.ack()
                elif op == "dead_letter":
                    await held.delivery.reject(requeue=False)
                else:
                    await held.delivery.nack(requeue=True)
            except Exception as exc:  # its channel closed (broker restart): the broker delivers it again
                log.info("settling delivery %s (%s) failed: %s; it will be redelivered", msg_id, op, exc)

    async def _drop_settler_connection(self) -> None:
        conn, self._settler_conn = self._settler_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    # --- receiving ----------------------------------------------------------------------------------------------

    def on_message(self, queue: str, wake: Callable[[], None]) -> None:
        self._wakes[queue] = wake

    async def _consume(self, queue: str) -> None:
        if queue in self._consuming:
            return
        _, consumer = await self._channels()
        declared = await self._declare(consumer, queue)
        self._buffers.setdefault(queue, deque())
        await declared.consume(functools.partial(self._delivered, queue), no_ack=False)
        self._consuming[queue] = declared

    async def _delivered(self, queue: str, delivery: AbstractIncomingMessage) -> None:
        try:
            body = json.loads(delivery.body)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            log.error("dead-lettering an unreadable message on %s: %s", queue, exc)
            await delivery.reject(requeue=False)
            return
        given = (delivery.headers or {}).get(READS_HEADER)
        reads = given if isinstance(given, int) else 0
        read_count = reads + 1 + (1 if delivery.redelivered else 0)
        msg_id = next(self._ids)
        self._held[msg_id] = _Held(queue, delivery, body, read_count)
        self._buffers[queue].append(Message(msg_id, queue, body, read_count))
        wake = self._wakes.get(queue)
        if wake is not None:
            wake()

    async def receive(
        self, conn: Connection, queue: str, *, max_messages: int, visibility_seconds: int
    ) -> list[Message]:
        """What the consumer has buffered (up to ``max_messages``), leased for ``visibility_seconds``."""
        await self._consume(queue)
        await self._requeue_expired()
        buffer = self._buffers[queue]
        taken = [buffer.popleft() for _ in range(min(max_messages, len(buffer)))]
        deadline = time.monotonic() + visibility_seconds
        for message in taken:
            held = self._held.get(message.msg_id)
            if held is not None:
                held.deadline = deadline
        return taken

    async def _requeue_expired(self) -> None:
        """Deliveries whose lease ran out unsettled (their holder's error path left them, or it stopped renewing)
        go back to the broker, as a PGMQ message becomes visible again after its visibility timeout."""
        now = time.monotonic()
        expired = [m for m, h in list(self._held.items()) if h.deadline < now and not h.settling]
        if expired:
            log.info("%d delivery(ies) not settled within their lease: handed back to the broker", len(expired))
            await self._apply([(m, "requeue") for m in expired])

    # --- settling -----------------------------------------------------------------------------------------------

    async def ack_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        await self._settle(conn, [(m, "ack") for m in msg_ids])

    async def nack_many(
        self, conn: Connection, queue: str, msg_ids: Sequence[int], *, delay_seconds: float = 0.0
    ) -> None:
        """Without a delay: requeue on the broker (after commit). With one: re-send through the outbox, not before
        ``delay_seconds``, and ack the original after commit."""
        if not msg_ids:
            return
        if delay_seconds <= 0:
            await self._settle(conn, [(m, "requeue") for m in msg_ids])
            return
        again = [
            OutboxMessage(held.queue, held.body, held.read_count, delay_seconds)
            for m in msg_ids
            if (held := self._held.get(m)) is not None
        ]
        await outbox_insert_many(conn, again, channel=OUTBOX_CHANNEL)
        await self._queued()
        await self._settle(conn, [(m, "ack") for m in msg_ids], sent=True)

    async def record_failure(
        self, conn: Connection, queue: str, msg_id: int, *, error: str, delay_seconds: float
    ) -> int:
        """Re-send the message with its failure counted in the body (as PGMQ does), after ``delay_seconds``."""
        held = self._held.get(msg_id)
        if held is None:
            return 0
        failures = int(held.body.get("failures") or 0) + 1
        body = {**held.body, "failures": failures, "last_error": error[:2000]}
        held.body = body  # a dead-lettering that follows keeps the count and the error
        async with conn.transaction():
            again = OutboxMessage(queue, body, held.read_count, delay_seconds)
            (self._resent[msg_id],) = await outbox_insert_returning_many(conn, [again], channel=OUTBOX_CHANNEL)
            while len(self._resent) > 10_000:  # only the latest failures can still be dead-lettered by this process
                del self._resent[next(iter(self._resent))]
            await self._queued()
            await self._settle(conn, [(msg_id, "ack")], sent=True)
        return failures

    async def dead_letter_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        """Reject without requeue: the broker moves them to ``<queue>_dlq`` (after commit). A delivery already re-sent
        by :meth:`record_failure` has its waiting copy redirected to ``<queue>_dlq`` instead (in this transaction);
        a copy already published comes back, fails again and is dead-lettered then."""
        resent = [self._resent.pop(m) for m in msg_ids if m in self._resent]
        if resent:
            redirected = await outbox_redirect_many(conn, resent)
            if len(redirected) < len(resent):
                log.warning(
                    "%d dead-lettered message(s) on %s were already re-sent", len(resent) - len(redirected), queue
                )
            await self._queued()
        await self._settle(conn, [(m, "dead_letter") for m in msg_ids], sent=bool(resent))

    async def extend_many(self, conn: Connection, queue: str, msg_ids: Sequence[int], *, seconds: int) -> None:
        """Renew the leases (local deadlines; no broker or database call, so the worker's lease thread may call it)."""
        deadline = time.monotonic() + seconds
        for msg_id in msg_ids:
            held = self._held.get(msg_id)
            if held is not None:
                held.deadline = deadline

    async def depth(self, conn: Connection, queue: str) -> int:
        """Messages ready on the broker (a passive declare; deliveries held by consumers are not counted)."""
        if self._connection is None:
            await self._channels()
        assert self._connection is not None
        chan = await self._connection.channel()
        try:
            declared = await chan.declare_queue(broker_queue(self._prefix, queue), passive=True)
            return int(declared.declaration_result.message_count or 0)
        except aio_pika.exceptions.ChannelClosed:
            return 0  # no such queue
        finally:
            with contextlib.suppress(Exception):
                await chan.close()

    # --- sends in the caller's transaction ----------------------------------------------------------------------

    async def send_many(self, conn: Connection, queue: str, bodies: Sequence[dict[str, Any]]) -> None:
        if bodies:
            await outbox_insert_many(conn, [OutboxMessage(queue, b) for b in bodies], channel=OUTBOX_CHANNEL)
            await self._queued()
            await self._settle(conn, [], sent=True)

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
        """The state changes and the outbox rows in one statement; the applied results are acked after commit."""
        sent = False
        if enqueue or moves:
            counts = await outbox_task_advance_many(
                conn, enqueue=enqueue, deliveries=deliveries, moves=moves, channel=OUTBOX_CHANNEL
            )
            sent = bool(counts.get("sent"))
            if sent:
                await self._queued()
        await self._settle(conn, [(m, "ack") for m in ack_ids], sent=sent)

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
        """Store fenced results with outbox rows (sent now); reading the answer acks, after commit, the step
        deliveries of the results that won. A result that lost is not acked: its delivery belongs to whoever holds
        the step now. ``completions`` and ``continuation`` are left to the caller (this store completes and plans
        nothing, so it cannot take ``moved_on_only`` for results the caller would apply)."""
        if moved_on_only and any(lock_tasks):
            raise ValueError("the RabbitMQ transport moves no task on: moved_on_only needs a ClaimingTransport")
        await self._ensure_sender()
        sent = await outbox_step_result_store_many(
            conn, results, results_queue=results_queue, channel=OUTBOX_CHANNEL, lock_tasks=lock_tasks
        )

        async def read() -> StoredResults:
            answer = await sent()
            acks: list[tuple[int, Settlement]] = [(h.msg_id, "ack") for h in held if h.step_uuid in answer.stored]
            await self._settle(conn, acks, sent=bool(answer.stored - answer.here))
            return answer

        return read

    # --- lifecycle ----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Publish what is due, stop the sender and the settler, close the broker connection (held deliveries are
        then redelivered by the broker)."""
        if self._pending and self._settler is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while self._pending:
                        await asyncio.sleep(0.01)
        settler, self._settler = self._settler, None  # also ends its loop where a cancellation is swallowed
        if settler is not None:
            settler.cancel()
            await asyncio.wait({settler}, timeout=10)
        await self._drop_settler_connection()
        if self._sender is not None:
            await self._sender.flush(5.0)
            await self._sender.stop()
            self._sender = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), 10)
        self._connection = self._publisher = self._consumer = None
        self._consuming.clear()
        self._declared.clear()
        self._buffers.clear()
        self._held.clear()
        self._resent.clear()
