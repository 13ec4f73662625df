"""RabbitMQ only: the broker drops the transport's connection (``rabbitmqctl close_connection``, what a broker
restart does to every client, without disturbing anyone else's queues): the transport reconnects, publishes and
consumes again, and what it held is delivered again."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tasker.messaging.rabbitmq import RabbitMqTransport
from tasker.store.db import Connection, connect
from tests.messaging import broker
from tests.messaging.test_transport_conformance import QUEUE, has, receive_until


def _close_connection(connection_name: str) -> None:
    """Have the broker close the client connection that calls itself ``connection_name``."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_connections", "-q", "pid", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if connection_name in line]
    assert pids, f"the broker lists no connection named {connection_name}"
    for pid in pids:
        subprocess.run(["rabbitmqctl", "close_connection", pid, "test: connection dropped"], timeout=60, check=True)


@pytest.fixture
async def transport(db_url: str) -> AsyncIterator[RabbitMqTransport]:
    broker.require_broker()
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is not installed: cannot have the broker drop a connection")
    prefix = broker.new_prefix()
    made = RabbitMqTransport(db_url, broker.RABBITMQ_URL, prefix=prefix, connection_name=f"tasker-test-{uuid.uuid4()}")
    yield made
    await made.close()
    await broker.delete_queues(prefix, [QUEUE])


@pytest.fixture
async def other(db_url: str) -> AsyncIterator[Connection]:
    connection = await connect(db_url)
    yield connection
    await connection.close()


async def test_the_transport_reconnects_after_the_broker_drops_it(
    transport: RabbitMqTransport, conn: Connection, other: Connection
) -> None:
    await transport.ensure_queue(conn, QUEUE)
    await transport.send_many(conn, QUEUE, [{"marker": "before"}])
    (held,) = await receive_until(transport, other, has("before"))
    await asyncio.to_thread(_close_connection, transport.connection_name)
    # held across the drop: its ack cannot reach the broker any more, which delivers it again
    await transport.ack_many(other, QUEUE, [held.msg_id])
    deadline = time.monotonic() + 60
    while True:  # the sender publishes once the connection is back (rows wait in the outbox meanwhile)
        await transport.send_many(conn, QUEUE, [{"marker": "after"}])
        try:
            received = await asyncio.wait_for(
                receive_until(transport, other, lambda ms: has("after")(ms) and has("before")(ms)), 10
            )
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "the transport never came back"
    again = next(m for m in received if m.body["marker"] == "before")
    assert again.read_count > 1
