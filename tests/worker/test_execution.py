"""How handlers run: a sync handler that overruns its timeout does not take its thread's slot with it, an async
function registered with @step_handler runs on the loop and is cancellable, SystemExit fails the step and not the
worker, and an async handler that blocks the event loop keeps its lease."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

import tests.worker.handlers  # noqa: F401  (registers tests.worker.async_function)
from tasker.engine.operator import cancel_task
from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tasker.worker.process import Worker, WorkerConfig
from tests.e2e import processes
from tests.e2e.runtime import create, running, wait_settled
from tests.worker.support import (
    NAMESPACE,
    lines,
    only_step,
    register_worker_templates,
    transitions,
    until,
    worker_running,
)


async def test_overrun_sync_handlers_do_not_starve_later_steps(
    conn: Connection, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await register_worker_templates(conn)
    caplog.set_level(logging.WARNING, logger="tasker.worker")
    async with running(db_url, [NAMESPACE], workers=0), worker_running(db_url, concurrency=1):
        # two handlers sleep far past their 2 s timeout, each keeping its thread; then a step that returns at once
        overruns = [await create(conn, NAMESPACE, "overrun", {"sleep_seconds": 12, "n": n}) for n in range(2)]
        quick = await create(conn, NAMESPACE, "quick", {})
        settled = [await wait_settled(conn, c.task_uuid, timeout=90) for c in [*overruns, quick]]
    for task in settled[:2]:
        step = await only_step(conn, task["task_uuid"])
        assert step["results"]["error"]["error_type"] == "timeout"
    assert settled[2]["state"] == "complete"
    assert (await only_step(conn, quick.task_uuid))["results"]["result"] == {"quick": True}
    abandoned = [r.getMessage() for r in caplog.records if "abandoned" in r.getMessage()]
    assert abandoned and "tests.handlers.scenarios.Sleep" in abandoned[0]


async def test_an_async_function_handler_runs_on_the_loop_and_is_cancelled(
    conn: Connection, db_url: str, tmp_path: Path
) -> None:
    await register_worker_templates(conn)
    marker = tmp_path / "marker"
    async with running(db_url, [NAMESPACE], workers=0), worker_running(db_url):
        created = await create(conn, NAMESPACE, "async_function", {"marker_file": str(marker)})

        async def started() -> bool:
            return bool(lines(marker))

        await until(started, what="the handler to start")
        assert lines(marker) == ["started on_loop=True"]
        assert await cancel_task(conn, task_uuid=created.task_uuid, actor="test") == "cancelled"

        async def cancelled() -> bool:
            return "cancelled" in lines(marker)

        await until(cancelled, timeout=20, what="the handler to be cancelled")  # it would sleep 30 s otherwise
    steps = {s["name"]: s for s in await task_steps(conn, created.task_uuid)}
    assert steps["async_function_step"]["state"] == "cancelled"
    assert steps["after_async_function_step"]["state"] == "cancelled"


async def test_system_exit_fails_the_step_and_the_worker_keeps_working(conn: Connection, db_url: str) -> None:
    await register_worker_templates(conn)
    worker = processes.start(db_url, "worker", "-n", NAMESPACE, "--concurrency", "2", log_name="worker-exit")
    try:
        async with running(db_url, [NAMESPACE], workers=0):
            exited = await create(conn, NAMESPACE, "system_exit", {})
            failed = await wait_settled(conn, exited.task_uuid, timeout=90)
            quick = await create(conn, NAMESPACE, "quick", {})
            completed = await wait_settled(conn, quick.task_uuid, timeout=90)
        assert worker.poll() is None, "the worker process exited"
    finally:
        processes.stop(worker)
    assert failed["state"] in {"blocked_by_failures", "error"}
    error = (await only_step(conn, exited.task_uuid))["results"]["error"]
    assert error["error_type"] == "SystemExit" and "SystemExit" in error["message"]
    assert completed["state"] == "complete"


def _worker_in_a_thread(url: str, config: WorkerConfig) -> tuple[Worker, threading.Thread, Any]:
    """A worker on an event loop of its own (so a handler blocking it does not block this test's loop)."""
    worker = Worker(url, config)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(worker.run(stop))
        loop.close()

    thread = threading.Thread(target=serve, name="blocked-worker", daemon=True)
    thread.start()
    return worker, thread, lambda: loop.call_soon_threadsafe(stop.set)


async def test_an_async_handler_blocking_the_loop_keeps_its_lease(
    conn: Connection, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await register_worker_templates(conn)
    caplog.set_level(logging.WARNING, logger="tasker.worker")
    run_file = tmp_path / "runs"
    config = WorkerConfig(namespaces=[NAMESPACE], concurrency=1, lease_seconds=2, env="test")
    first, thread, stop_first = _worker_in_a_thread(db_url, config)
    try:
        created = await create(conn, NAMESPACE, "block_the_loop", {"run_file": str(run_file), "block_seconds": 9})

        async def started() -> bool:
            return len(lines(run_file)) == 1

        await until(started, what="the first worker to start the handler")
        # a second worker polls the queue all along: had the lease lapsed, it would take the step over
        async with running(db_url, [NAMESPACE], workers=0), worker_running(db_url, lease_seconds=2) as second:
            task = await wait_settled(conn, created.task_uuid, timeout=90)
            assert second.steps_done == 0
    finally:
        stop_first()
        await asyncio.to_thread(thread.join, 30)
    assert task["state"] == "complete"
    step = await only_step(conn, created.task_uuid)
    assert step["attempts"] == 1
    assert [t["to_state"] for t in await transitions(conn, step["workflow_step_uuid"])].count("in_progress") == 1
    assert len(lines(run_file)) == 1
    assert first.steps_done == 1
    stalls = [r.getMessage() for r in caplog.records if "event loop has been blocked" in r.getMessage()]
    assert stalls and "block_the_loop_step" in stalls[0], "the blocked loop was reported, naming the running step"
