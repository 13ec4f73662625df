"""Procrastinate workload for bench/peers.py: a chain of four jobs, each deferring the next, run by a separate
worker process.

Runs in the peer venv, never in the project's:

    .cache/peers-venv/bin/python bench/peers_procrastinate.py bench URL --chains ...   # measures, starts the worker
    .cache/peers-venv/bin/python bench/peers_procrastinate.py worker URL               # the worker process alone

A chain is one deferred job of the task ``peers_step`` with ``value`` and ``remaining`` arguments; the job defers
the next one with ``value + 1`` (Procrastinate stores no results: the previous step's result travels in the next
job's arguments) until ``remaining`` reaches 0. The chain is done when its last job is marked ``succeeded``: a
trigger added to ``procrastinate_jobs`` notifies then, in the worker's own transaction, and the benchmark listens.
The worker keeps Procrastinate's defaults (LISTEN/NOTIFY for new jobs, 5 s polling as a fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import procrastinate
import psycopg

from peers_common import STEPS, ConnectionWindow, closed_loop, result_line

DONE_CHANNEL = "peers_chain_done"
NOTIFY_DONE = f"""
CREATE FUNCTION peers_notify_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{DONE_CHANNEL}', NEW.args->>'chain');
    RETURN NEW;
END $$;
CREATE TRIGGER peers_notify_done AFTER UPDATE OF status ON procrastinate_jobs
    FOR EACH ROW WHEN (NEW.status = 'succeeded' AND OLD.status <> 'succeeded' AND NEW.args->>'remaining' = '0')
    EXECUTE FUNCTION peers_notify_done();
"""


def make_app(url: str, pool_size: int) -> procrastinate.App:
    """An app bound to ``url`` with a pool of ``pool_size`` connections, its one task registered."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=url, min_size=pool_size, max_size=pool_size)
    )

    @app.task(name="peers_step")
    async def peers_step(chain: int, value: int, remaining: int) -> int:
        result = value + 1
        if remaining:
            await peers_step.defer_async(chain=chain, value=result, remaining=remaining - 1)
        return result

    return app


async def run_worker(url: str, concurrency: int, pool_size: int) -> None:
    app = make_app(url, pool_size)
    async with app.open_async():
        await app.run_worker_async(concurrency=concurrency, install_signal_handlers=True)


class Done:
    """Listens for the trigger's notifications and lets each chain await its own."""

    def __init__(self, app: procrastinate.App, conn: psycopg.AsyncConnection[object]) -> None:
        self.app = app
        self.conn = conn
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.conn.execute(f"LISTEN {DONE_CHANNEL}")
        self.listener = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for note in self.conn.notifies():
            waiter = self.waiters.pop(note.payload, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(time.perf_counter())

    async def run_chain(self, chain: int, timeout: float = 120.0) -> float:
        """Defers the chain's first job and returns the time its last job succeeded."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[str(chain)] = future
        await self.app.configure_task("peers_step").defer_async(chain=chain, value=chain, remaining=STEPS - 1)
        return await asyncio.wait_for(future, timeout)


def start_worker(url: str, concurrency: int, pool_size: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(Path(__file__).resolve()), "worker", url]
    command += ["--concurrency", str(concurrency), "--pool-size", str(pool_size)]
    return subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent)})


async def measure(args: argparse.Namespace) -> str:
    app = make_app(args.url, args.client_pool_size)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        async with await psycopg.AsyncConnection.connect(args.url, autocommit=True) as conn:
            await conn.execute(NOTIFY_DONE)
        worker = start_worker(args.url, args.concurrency_worker, args.worker_pool_size)
        try:
            return await measure_with_worker(app, args)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()


async def measure_with_worker(app: procrastinate.App, args: argparse.Namespace) -> str:
    listener = await psycopg.AsyncConnection.connect(args.url, autocommit=True)
    done = Done(app, listener)
    await done.start()
    ids = iter(range(1, 10**9))
    for _ in range(args.warmup):
        await done.run_chain(next(ids))

    window = ConnectionWindow(args.url)
    await asyncio.to_thread(window.start)
    latencies: list[float] = []
    for _ in range(args.chains):
        started = time.perf_counter()
        latencies.append((await done.run_chain(next(ids)) - started) * 1000)
    latency_connections = await asyncio.to_thread(window.stop)

    window = ConnectionWindow(args.url)
    await asyncio.to_thread(window.start)
    started = time.perf_counter()
    await closed_loop(lambda _: done.run_chain(next(ids)), args.throughput_chains, args.concurrency)
    seconds = time.perf_counter() - started
    throughput_connections = await asyncio.to_thread(window.stop)
    await listener.close()
    return result_line(
        version=version("procrastinate"),
        latencies_ms=latencies,
        latency_connections=latency_connections,
        throughput_chains=args.throughput_chains,
        throughput_seconds=seconds,
        throughput_connections=throughput_connections,
        notes=(
            f"1 worker process, concurrency {args.concurrency_worker}, pool {args.worker_pool_size}; "
            f"the bench defers through a pool of {args.client_pool_size} and listens on 1 connection"
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["bench", "worker"])
    parser.add_argument("url", help="postgresql:// URL of the (empty) database Procrastinate uses")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--throughput-chains", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200, help="chains in flight in the throughput run")
    parser.add_argument("--concurrency-worker", type=int, default=32, help="the worker's concurrency")
    parser.add_argument("--worker-pool-size", type=int, default=8)
    parser.add_argument("--client-pool-size", type=int, default=4)
    parser.add_argument("--pool-size", type=int, default=8, help="(worker mode) its connection pool")
    args = parser.parse_args()
    if args.mode == "worker":
        asyncio.run(run_worker(args.url, args.concurrency, args.pool_size))
        return
    print(asyncio.run(measure(args)), flush=True)


if __name__ == "__main__":
    main()
