"""One conformance suite for every transport: the same assertions over PGMQ and RabbitMQ (real PostgreSQL, a real
broker). Waits are on messages or on database state with a generous deadline, never on elapsed time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.rabbitmq import RabbitMqTransport
from tasker.messaging.transport import Message, Transport
from tasker.store.db import Connection, connect
from tasker.store.outbox import outbox_count
from tests.messaging import broker

QUEUE = "worker_conformance_queue"
DEADLINE_SECONDS = 30.0


@dataclass
class Kind:
    """How to make a transport of one kind, and the two things the protocol leaves to the backend."""

    name: str
    make: Callable[[], Transport]
    dead_lettered: Callable[[Connection], Awaitable[list[dict[str, Any]]]]


@pytest.fixture(params=["pgmq", "rabbitmq"])
async def kind(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Kind]:
    if request.param == "pgmq":

        async def archived(conn: Connection) -> list[dict[str, Any]]:
            rows = await (await conn.execute(f"SELECT message FROM pgmq.a_{QUEUE} ORDER BY msg_id")).fetchall()
            return [r["message"] for r in rows]

        yield Kind("pgmq", PgmqTransport, archived)
        return
    broker.require_broker()
    prefix = broker.new_prefix()

    async def in_dlq(conn: Connection) -> list[dict[str, Any]]:
        return [json.loads(body) for body in await broker.dead_lettered(prefix, QUEUE)]

    yield Kind("rabbitmq", lambda: RabbitMqTransport(db_url, broker.RABBITMQ_URL, prefix=prefix), in_dlq)
    await broker.delete_queues(prefix, [QUEUE])


@pytest.fixture
async def transports(kind: Kind) -> AsyncIterator[list[Transport]]:
    """Transports made by the test (each a consumer of its own), all closed at the end."""
    made: list[Transport] = []
    yield made
    for transport in made:
        await transport.close()


@pytest.fixture
async def other(db_url: str) -> AsyncIterator[Connection]:
    """A second connection: what other processes see."""
    connection = await connect(db_url)
    yield connection
    await connection.close()


def new(kind: Kind, transports: list[Transport]) -> Transport:
    transport = kind.make()
    transports.append(transport)
    return transport


async def receive_until(
    transport: Transport,
    conn: Connection,
    done: Callable[[list[Message]], bool],
    *,
    visibility_seconds: int = 30,
) -> list[Message]:
    """Receive until ``done(all received so far)``; fails after a generous deadline."""
    received: list[Message] = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not done(received):
        assert time.monotonic() < deadline, f"gave up waiting; received {[m.body for m in received]}"
        batch = await transport.receive(conn, QUEUE, max_messages=10, visibility_seconds=visibility_seconds)
        received += batch
        if not batch:
            await asyncio.sleep(0.02)
    return received


def has(marker: str) -> Callable[[list[Message]], bool]:
    return lambda messages: any(m.body.get("marker") == marker for m in messages)


async def test_a_send_is_visible_only_after_its_transaction_commits(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    sender, consumer = new(kind, transports), new(kind, transports)
    await sender.ensure_queue(conn, QUEUE)
    async with conn.transaction():
        await sender.send_many(conn, QUEUE, [{"marker": "one"}, {"marker": "two"}])
        assert await consumer.depth(other, QUEUE) == 0
        assert await consumer.receive(other, QUEUE, max_messages=10, visibility_seconds=30) == []
    received = await receive_until(consumer, other, lambda ms: len(ms) >= 2)
    assert sorted(m.body["marker"] for m in received) == ["one", "two"]
    assert all(m.read_count == 1 and m.queue == QUEUE for m in received)


async def test_a_rolled_back_send_sends_nothing(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    transport = new(kind, transports)
    await transport.ensure_queue(conn, QUEUE)
    with pytest.raises(RuntimeError):
        async with conn.transaction():
            await transport.send_many(conn, QUEUE, [{"marker": "rolled back"}])
            raise RuntimeError("roll back")
    await transport.send_many(conn, QUEUE, [{"marker": "after"}])  # autocommit: committed at once
    received = await receive_until(transport, other, has("after"))
    assert [m.body["marker"] for m in received] == ["after"]
    assert await outbox_count(conn) == 0


async def test_an_acknowledged_message_is_not_delivered_again(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    first = new(kind, transports)
    await first.ensure_queue(conn, QUEUE)
    await first.send_many(conn, QUEUE, [{"marker": "acked"}])
    (message,) = await receive_until(first, other, has("acked"), visibility_seconds=0)
    async with other.transaction():  # acknowledged with the work it did
        await first.ack_many(other, QUEUE, [message.msg_id])
    await first.close()
    # a consumer that dies redelivers what it held (rabbitmq), a visibility timeout of 0 shows it again (pgmq):
    # neither happens to an acknowledged message, so the marker sent after it comes alone
    second = new(kind, transports)
    await second.send_many(conn, QUEUE, [{"marker": "next"}])
    received = await receive_until(second, other, has("next"))
    assert [m.body["marker"] for m in received] == ["next"]


async def test_an_ack_in_a_rolled_back_transaction_acknowledges_nothing(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    first = new(kind, transports)
    await first.ensure_queue(conn, QUEUE)
    await first.send_many(conn, QUEUE, [{"marker": "kept"}])
    (message,) = await receive_until(first, other, has("kept"), visibility_seconds=1)
    with pytest.raises(RuntimeError):
        async with other.transaction():
            await first.ack_many(other, QUEUE, [message.msg_id])
            raise RuntimeError("roll back")
    await first.close()  # the consumer goes away (rabbitmq) / its lease runs out (pgmq)
    second = new(kind, transports)
    (again,) = await receive_until(second, other, has("kept"))
    assert again.read_count > 1


async def test_a_message_comes_back_after_its_consumer_dies(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    first = new(kind, transports)
    await first.ensure_queue(conn, QUEUE)
    await first.send_many(conn, QUEUE, [{"marker": "held"}])
    (held,) = await receive_until(first, other, has("held"), visibility_seconds=1)
    assert held.read_count == 1
    await first.close()  # closes the broker connection (rabbitmq); pgmq: the 1 s lease runs out
    second = new(kind, transports)
    (again,) = await receive_until(second, other, has("held"))
    assert again.read_count > 1
    assert again.body == held.body


async def test_a_message_left_unsettled_past_its_lease_comes_back(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    """The consumer lives on but never settles (an error path left the message alone): after the lease, any
    consumer, this one included, gets it again."""
    transport = new(kind, transports)
    await transport.ensure_queue(conn, QUEUE)
    await transport.send_many(conn, QUEUE, [{"marker": "forgotten"}])
    (first,) = await receive_until(transport, other, has("forgotten"), visibility_seconds=1)
    (again,) = await receive_until(transport, other, has("forgotten"))
    assert again.body == first.body and again.read_count > 1


async def test_a_nack_with_a_delay_gives_the_message_back(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    transport = new(kind, transports)
    await transport.ensure_queue(conn, QUEUE)
    await transport.send_many(conn, QUEUE, [{"marker": "later"}])
    (message,) = await receive_until(transport, other, has("later"))
    async with other.transaction():
        await transport.nack_many(other, QUEUE, [message.msg_id], delay_seconds=0.5)
    (again,) = await receive_until(transport, other, has("later"))
    assert again.read_count > 1
    assert again.body == message.body
    await transport.ack_many(other, QUEUE, [again.msg_id])


async def test_a_failure_is_counted_and_the_message_retried(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    transport = new(kind, transports)
    await transport.ensure_queue(conn, QUEUE)
    await transport.send_many(conn, QUEUE, [{"marker": "failing"}])
    (message,) = await receive_until(transport, other, has("failing"))
    failures = await transport.record_failure(other, QUEUE, message.msg_id, error="boom", delay_seconds=0.2)
    assert failures == 1
    (again,) = await receive_until(transport, other, has("failing"))
    assert again.body["failures"] == 1
    assert again.body["last_error"] == "boom"
    assert await transport.record_failure(other, QUEUE, again.msg_id, error="boom", delay_seconds=0.2) == 2


async def test_dead_lettered_messages_leave_the_queue_for_its_dead_letter_store(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    transport = new(kind, transports)
    await transport.ensure_queue(conn, QUEUE)
    await transport.send_many(conn, QUEUE, [{"marker": "poison"}, {"marker": "retried poison"}])
    received = await receive_until(transport, other, lambda ms: len(ms) >= 2)
    poison = next(m for m in received if m.body["marker"] == "poison")
    retried = next(m for m in received if m.body["marker"] == "retried poison")
    await transport.record_failure(other, QUEUE, retried.msg_id, error="boom", delay_seconds=60)
    async with other.transaction():
        await transport.dead_letter_many(other, QUEUE, [poison.msg_id, retried.msg_id])
    deadline = time.monotonic() + DEADLINE_SECONDS
    found: list[dict[str, Any]] = []
    while len(found) < 2:
        assert time.monotonic() < deadline, f"dead-lettered so far: {found}"
        found += await kind.dead_lettered(other)
        await asyncio.sleep(0.05)
    assert sorted(b["marker"] for b in found) == ["poison", "retried poison"]
    assert next(b for b in found if b["marker"] == "retried poison")["failures"] == 1
    await transport.send_many(conn, QUEUE, [{"marker": "next"}])
    assert [m.body["marker"] for m in await receive_until(transport, other, has("next"))] == ["next"]


async def test_depth_counts_waiting_messages(
    kind: Kind, transports: list[Transport], conn: Connection, other: Connection
) -> None:
    transport = new(kind, transports)
    await transport.ensure_queue(conn, QUEUE)
    assert await transport.depth(other, QUEUE) == 0
    await transport.send_many(conn, QUEUE, [{"n": n} for n in range(3)])
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (depth := await transport.depth(other, QUEUE)) < 3:  # rabbitmq: once the sender published them
        assert time.monotonic() < deadline, f"depth {depth}"
        await asyncio.sleep(0.02)
    assert depth == 3
