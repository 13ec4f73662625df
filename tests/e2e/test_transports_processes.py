"""The acceptance workflows on both transports, with real orchestrator and worker processes: linear, diamond,
retry with backoff, a worker killed mid-step (its step redelivered), and, for RabbitMQ, a process killed after
its commit and before its publish (the outbox keeps the message)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasker.messaging.pgmq import PgmqTransport
from tasker.messaging.rabbitmq import RabbitMqTransport
from tasker.messaging.transport import Transport
from tasker.store.db import Connection
from tasker.store.outbox import outbox_count
from tasker.store.tasks import task_steps
from tests.e2e.processes import services, start, stop, wait_until_ready
from tests.e2e.runtime import create, register_fixture_templates, step_results, wait_settled
from tests.messaging import broker

NAMESPACES = ["linear_workflow", "diamond_workflow", "retry_mechanics", "runtime_checks"]


@dataclass
class Setup:
    """One transport for the test's own sends, and the environment that selects it in the processes."""

    name: str
    transport: Transport
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(params=["pgmq", "rabbitmq"])
async def setup(request: pytest.FixtureRequest, db_url: str) -> AsyncIterator[Setup]:
    if request.param == "pgmq":
        yield Setup("pgmq", PgmqTransport(), {"TASKER_TRANSPORT": "pgmq"})
        return
    async with _rabbitmq(db_url) as rabbit:
        yield rabbit


@pytest.fixture
async def rabbit_setup(db_url: str) -> AsyncIterator[Setup]:
    async with _rabbitmq(db_url) as rabbit:
        yield rabbit


@contextlib.asynccontextmanager
async def _rabbitmq(db_url: str) -> AsyncIterator[Setup]:
    broker.require_broker()
    prefix = broker.new_prefix()
    env = {"TASKER_TRANSPORT": "rabbitmq", "TASKER_RABBITMQ_URL": broker.RABBITMQ_URL, "TASKER_QUEUE_PREFIX": prefix}
    transport = RabbitMqTransport(db_url, broker.RABBITMQ_URL, prefix=prefix)
    try:
        yield Setup("rabbitmq", transport, env)
    finally:
        await transport.close()
        await broker.delete_queues(prefix, broker.queues_of(NAMESPACES))


@pytest.fixture
async def registered(conn: Connection) -> Connection:
    await register_fixture_templates(conn)
    return conn


async def test_linear_workflow(setup: Setup, registered: Connection, db_url: str) -> None:
    with services(db_url, ["orchestrator"], ["worker", "-n", "linear_workflow"], extra_env=setup.env):
        created = await create(
            registered, "linear_workflow", "mathematical_sequence", {"even_number": 6}, transport=setup.transport
        )
        task = await wait_settled(registered, created.task_uuid, timeout=60)
    assert task["state"] == "complete"
    results = await step_results(registered, created.task_uuid)
    assert results["linear_step_4"] == {"result": 69, "operation": "divide"}
    assert await outbox_count(registered) == 0
    row = await (
        await registered.execute("SELECT coalesce(sum(total_messages), 0) AS sent FROM pgmq.metrics_all()")
    ).fetchone()
    assert row is not None
    assert (row["sent"] > 0) == (setup.name == "pgmq"), "the processes used the chosen transport"


async def test_diamond_workflows_with_two_workers(setup: Setup, registered: Connection, db_url: str) -> None:
    worker = ["worker", "-n", "diamond_workflow", "--concurrency", "4"]
    with services(db_url, ["orchestrator"], worker, worker, extra_env=setup.env):
        created = [
            await create(
                registered, "diamond_workflow", "diamond_pattern", {"even_number": n}, transport=setup.transport
            )
            for n in (2, 4, 6, 8, 10)
        ]
        for task in created:
            assert (await wait_settled(registered, task.task_uuid, timeout=90))["state"] == "complete"
    assert (await step_results(registered, created[2].task_uuid))["diamond_end"]["result"] == 66.5
    row = await (
        await registered.execute(
            "SELECT max(n) AS most FROM (SELECT count(*) AS n FROM tasker.workflow_step_transitions"
            " WHERE to_state = 'complete' GROUP BY workflow_step_uuid) c"
        )
    ).fetchone()
    assert row is not None and row["most"] == 1, "every step completed exactly once"


async def test_retry_then_success(setup: Setup, registered: Connection, db_url: str) -> None:
    with services(db_url, ["orchestrator"], ["worker", "-n", "retry_mechanics"], extra_env=setup.env):
        created = await create(registered, "retry_mechanics", "retry_mechanics_test", {}, transport=setup.transport)
        task = await wait_settled(registered, created.task_uuid, timeout=60)
    assert task["state"] == "complete"
    [step] = await task_steps(registered, created.task_uuid)
    assert step["state"] == "complete" and step["attempts"] == 3
    assert step["results"]["result"] == {"succeeded_on_attempt": 3}


async def _wait_for_file(path: Path, timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{path} was never written")


async def test_a_worker_killed_mid_step_has_its_step_redelivered(
    setup: Setup, registered: Connection, db_url: str, tmp_path: Path
) -> None:
    """PGMQ: the lease (visibility timeout) runs out. RabbitMQ: the dead worker's connection closes and the broker
    redelivers its unacknowledged delivery. Either way the claim fence lets the step complete exactly once."""
    pid_file = tmp_path / "pids"
    worker = ["worker", "-n", "runtime_checks", "--lease-seconds", "2"]
    with services(db_url, ["orchestrator"], extra_env=setup.env):
        doomed = start(db_url, *worker, log_name="doomed", extra_env=setup.env)
        try:
            created = await create(
                registered,
                "runtime_checks",
                "sleepy_chain",
                {"sleep_seconds": 3, "pid_file": str(pid_file)},
                transport=setup.transport,
            )
            assert (await _wait_for_file(pid_file)).split()[0] == str(doomed.pid)
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait()
        finally:
            stop(doomed)
        with services(db_url, worker, extra_env=setup.env):
            task = await wait_settled(registered, created.task_uuid, timeout=60)
    assert task["state"] == "complete"
    steps = {s["name"]: s for s in await task_steps(registered, created.task_uuid)}
    assert steps["sleepy_first"]["attempts"] == 2
    rows = await (
        await registered.execute(
            "SELECT to_state, metadata->>'event' AS event FROM tasker.workflow_step_transitions"
            " WHERE workflow_step_uuid = %s ORDER BY sort_key",
            [steps["sleepy_first"]["workflow_step_uuid"]],
        )
    ).fetchall()
    assert [r["to_state"] for r in rows].count("complete") == 1
    assert "lease_expired" in [r["event"] for r in rows]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_process_killed_after_its_commit_and_before_its_publish_loses_nothing(
    rabbit_setup: Setup, registered: Connection, db_url: str
) -> None:
    """The API creates a task (its first step's message committed to the outbox) but cannot publish: its broker
    URL points at a port where nothing listens. It is killed -9 with the message unpublished; the senders of the
    orchestrator and worker started afterwards publish it, and the workflow completes."""
    import httpx

    setup = rabbit_setup  # PGMQ sends in the transaction itself: nothing lies between its commit and its publish

    port = _free_port()
    unreachable = {**setup.env, "TASKER_RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{_free_port()}/%2F"}
    api = start(db_url, "api", "--port", str(port), log_name="api-no-broker", extra_env=unreachable)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await wait_until_ready(client, "tasker api", timeout=60)
            body = {
                "namespace": "linear_workflow",
                "name": "mathematical_sequence",
                "version": "1.0.0",
                "context": {"even_number": 6},
            }
            created = await client.post("/v1/tasks", json=body)
            assert created.status_code == 201, created.text
            task_uuid = created.json()["task_uuid"]
        assert await outbox_count(registered) == 1, "committed, not published"
        os.kill(api.pid, signal.SIGKILL)
        api.wait()
    finally:
        stop(api)
    assert await outbox_count(registered) == 1, "the killed process left its message in the outbox"
    with services(db_url, ["orchestrator"], ["worker", "-n", "linear_workflow"], extra_env=setup.env):
        task = await wait_settled(registered, task_uuid, timeout=60)  # type: ignore[arg-type]
    assert task["state"] == "complete"
    assert await outbox_count(registered) == 0
