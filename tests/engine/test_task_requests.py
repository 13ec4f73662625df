"""The task-request consumer creates the task and acknowledges the request in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tasker.engine.task_requests import consume_task_request
from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.router import TASK_REQUESTS_QUEUE
from tasker.store.db import Connection
from tests.e2e.runtime import register_fixture_templates


class AckFailsOnce(PgmqTransport):
    """The queue's delete fails the first time, as when the connection drops between create and ack."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def ack_many(self, conn: Connection, queue: str, msg_ids: Sequence[int]) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("connection lost before the acknowledgement")
        await super().ack_many(conn, queue, msg_ids)


async def _count(conn: Connection, query: str) -> int:
    row = await (await conn.execute(query)).fetchone()
    assert row is not None
    return int(row["n"])


async def test_a_failed_ack_creates_nothing_and_the_redelivery_creates_the_task_once(conn: Connection) -> None:
    await register_fixture_templates(conn)
    transport = AckFailsOnce()
    await transport.ensure_queue(conn, TASK_REQUESTS_QUEUE)
    body = {"namespace": "test_scenarios", "name": "success_only", "version": "1.0.0", "context": {}}
    await transport.send_many(conn, TASK_REQUESTS_QUEUE, [{"task_request": body}])
    [message] = await transport.receive(conn, TASK_REQUESTS_QUEUE, max_messages=1, visibility_seconds=0)

    with pytest.raises(ConnectionError):
        await consume_task_request(conn, transport, message, env="test")
    assert await _count(conn, "SELECT count(*) AS n FROM tasker.tasks") == 0, "the task outlived its failed ack"

    [again] = await transport.receive(conn, TASK_REQUESTS_QUEUE, max_messages=1, visibility_seconds=30)
    created = await consume_task_request(conn, transport, again, env="test")
    assert created is not None
    assert await _count(conn, "SELECT count(*) AS n FROM tasker.tasks") == 1
    assert await _count(conn, f"SELECT count(*) AS n FROM pgmq.q_{TASK_REQUESTS_QUEUE}") == 0


async def test_a_refused_request_is_acknowledged_with_nothing_written(conn: Connection) -> None:
    await register_fixture_templates(conn)
    transport = PgmqTransport()
    await transport.ensure_queue(conn, TASK_REQUESTS_QUEUE)
    body = {"namespace": "test_scenarios", "name": "no_such_template", "version": "1.0.0", "context": {}}
    await transport.send_many(conn, TASK_REQUESTS_QUEUE, [{"task_request": body}])
    [message] = await transport.receive(conn, TASK_REQUESTS_QUEUE, max_messages=1, visibility_seconds=30)
    assert await consume_task_request(conn, transport, message, env="test") is None
    assert await _count(conn, "SELECT count(*) AS n FROM tasker.tasks") == 0
    assert await _count(conn, f"SELECT count(*) AS n FROM pgmq.q_{TASK_REQUESTS_QUEUE}") == 0
