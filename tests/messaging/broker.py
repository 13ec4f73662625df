"""RabbitMQ for tests: the broker's URL, a queue prefix of their own per test, and removal of what they declared.

Every test that uses RabbitMQ gets a fresh prefix (``TASKER_QUEUE_PREFIX``), so parallel pytest workers and the
PostgreSQL 18 and 15 passes of CI never see each other's messages; its queues, dead-letter queues and exchanges are
deleted at the end. The tests are skipped, saying why, only when no broker answers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterable
from urllib.parse import urlsplit

import aio_pika
import pytest

from tasker.messaging.router import ORCHESTRATION_QUEUES, broker_queue, dead_letter_names, worker_queue

RABBITMQ_URL = os.environ.get("TASKER_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def require_broker() -> None:
    parts = urlsplit(RABBITMQ_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2).close()
    except OSError as exc:
        pytest.skip(
            f"RabbitMQ does not answer at {parts.hostname}:{parts.port or 5672} ({exc}): RabbitMQ tests skipped"
        )


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}_"


def queues_of(namespaces: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    return [*ORCHESTRATION_QUEUES, *(worker_queue(ns) for ns in namespaces), *extra]


async def delete_queues(prefix: str, queues: Iterable[str]) -> None:
    """Delete each queue with its ``_dlq`` and ``_dlx`` (absent ones are fine)."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        for queue in queues:
            name = broker_queue(prefix, queue)
            exchange, dlq = dead_letter_names(name)
            for delete in (
                lambda ch, n=name: ch.queue_delete(n),
                lambda ch, n=dlq: ch.queue_delete(n),
                lambda ch, n=exchange: ch.exchange_delete(n),
            ):
                channel = await connection.channel()  # a failed delete closes its channel
                try:
                    await delete(channel)
                except Exception:
                    pass
                finally:
                    if not channel.is_closed:
                        await channel.close()
    finally:
        await connection.close()


async def dead_lettered(prefix: str, queue: str) -> list[bytes]:
    """The bodies in a queue's ``_dlq`` (taken off it)."""
    connection = await aio_pika.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        _, dlq = dead_letter_names(broker_queue(prefix, queue))
        declared = await channel.declare_queue(dlq, durable=True)
        bodies = []
        while (message := await declared.get(fail=False)) is not None:
            bodies.append(message.body)
            await message.ack()
        return bodies
    finally:
        await connection.close()


def delete_queues_now(prefix: str, queues: Iterable[str]) -> None:
    asyncio.run(delete_queues(prefix, list(queues)))
