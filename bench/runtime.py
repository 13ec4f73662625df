"""End-to-end benchmark: 4-step linear latency and diamond throughput, with orchestrator and worker processes.

    .venv/bin/python bench/runtime.py                       # both figures, default sizes
    .venv/bin/python bench/runtime.py --latency-tasks 300 --throughput-tasks 2000 --workers 2

Database: ``TASKER_DATABASE_URL`` names a server on which a database ``tasker_bench_runtime`` is recreated; without
it the embedded PostgreSQL 18 in ``.cache/bench-postgres`` is used. The orchestrator(s) and worker(s) are real
``tasker`` processes. Tasks are created through the engine's own entry point (``create_task``), the same call the
API and CLI make.

Latency: one task at a time; the clock runs from just before ``create_task`` until the NOTIFY on
``tasker_task_settled`` for that task arrives. The benchmark itself uses two connections (one creates, one listens).
Throughput: N diamond tasks are created first (their root steps enqueued) while no worker runs; then the
orchestrator(s) and worker(s) start, and steps/s = 4 N / (time from the first claim to the last completion, read
from the database), so that creation and process start-up are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from tasker.engine.task_requests import create_task  # noqa: E402
from tasker.messaging.pgmq import PgmqTransport  # noqa: E402
from tasker.messaging.router import TASK_SETTLED_CHANNEL  # noqa: E402
from tasker.model.requests import TaskRequest  # noqa: E402
from tasker.store.db import Connection, connect  # noqa: E402
from tasker.store.embedded import start_embedded  # noqa: E402
from tasker.store.migrate import migrate  # noqa: E402
from tasker.store.templates import template_register_paths  # noqa: E402

DATABASE = "tasker_bench_runtime"


def prepare_database(given: str | None) -> str:
    """A fresh database for this run; returns its URL."""
    import psycopg

    admin = given or start_embedded(ROOT / ".cache" / "bench-postgres", database="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        version = conn.execute("SHOW server_version").fetchone()
    print(f"PostgreSQL {version[0] if version else '?'}; database {DATABASE}")
    return make_conninfo(admin, dbname=DATABASE)


def start_services(url: str, orchestrators: int, workers: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "TASKER_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT / "src") + ":" + str(ROOT),
        "TASKER_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "tasker.cli.main"]
    processes = [subprocess.Popen([*command, "orchestrator"], cwd=ROOT, env=env) for _ in range(orchestrators)]
    processes += [
        subprocess.Popen([*command, "worker", "-n", "bench", "--concurrency", str(concurrency)], cwd=ROOT, env=env)
        for _ in range(workers)
    ]
    return processes


def stop_services(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


class Settled:
    """Listens on the task-settled channel and lets callers await one task or a count of tasks."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.waiters: dict[str, asyncio.Future[float]] = {}
        self.seen: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(TASK_SETTLED_CHANNEL)))
        self.task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        async for note in self.conn.notifies():
            now = time.perf_counter()
            self.seen[note.payload] = now
            waiter = self.waiters.pop(note.payload, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(now)

    async def wait_for(self, task_uuid: str, timeout: float = 60.0) -> float:
        if task_uuid in self.seen:
            return self.seen[task_uuid]
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[task_uuid] = future
        return await asyncio.wait_for(future, timeout)


class CpuClock:
    """CPU time spent by each kind of process while a phase runs, from ``/proc`` (Linux; PostgreSQL on the same
    machine): the worker and orchestrator processes, the server backends of the benchmark's database (sampled at
    the start and end of the phase: a backend that came or went in between is missed) and this process. On this
    project's 2-core machine a chain is CPU-bound: its latency is close to the CPU its steps take, process by
    process, one after the other."""

    def __init__(self, url: str, processes: list[subprocess.Popen[bytes]], orchestrators: int) -> None:
        self.url = url
        self.kinds = {p.pid: "orchestrator" if i < orchestrators else "worker" for i, p in enumerate(processes)}
        self.started: dict[str, float] = {}

    @staticmethod
    def _seconds(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def _sample(self) -> dict[str, float]:
        conn = await connect(self.url)
        try:
            rows = await (
                await conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            ).fetchall()
        finally:
            await conn.close()
        totals = {"worker": 0.0, "orchestrator": 0.0, "postgres": 0.0, "benchmark": sum(os.times()[:2])}
        for pid, kind in self.kinds.items():
            totals[kind] += self._seconds(pid)
        totals["postgres"] += sum(self._seconds(row["pid"]) for row in rows)
        return totals

    async def start(self) -> None:
        self.started = await self._sample()

    async def per_step_ms(self, steps: int) -> dict[str, float]:
        ended = await self._sample()
        return {kind: (ended[kind] - self.started[kind]) * 1000 / max(steps, 1) for kind in ended}

    @staticmethod
    def available() -> bool:
        return Path("/proc/self/stat").exists()


def cpu_line(cpu: dict[str, float] | None) -> str:
    if not cpu:
        return ""
    parts = ", ".join(f"{kind} {ms:.2f}" for kind, ms in cpu.items())
    return f"  CPU per step, ms: {parts} (PostgreSQL: the database's backends)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def measure_latency(
    url: str, count: int, warmup: int, template: str = "bench_linear", clock: CpuClock | None = None
) -> dict[str, Any]:
    creator, listener = await connect(url), await connect(url)
    settled = Settled(listener)
    await settled.start()
    transport = PgmqTransport()
    totals: list[float] = []
    creates: list[float] = []
    for i in range(warmup + count):
        if i == warmup and clock is not None:
            await clock.start()
        request = TaskRequest(namespace="bench", name=template, context={"i": i, "run": time.time()})
        started = time.perf_counter()
        created = await create_task(creator, transport, request, env="bench")
        created_at = time.perf_counter()
        done_at = await settled.wait_for(str(created.task_uuid))
        if i >= warmup:
            totals.append((done_at - started) * 1000)
            creates.append((created_at - started) * 1000)
    cpu = await clock.per_step_ms(4 * count) if clock is not None else None
    await creator.close()
    await listener.close()
    return {
        "cpu_ms_per_step": cpu,
        "tasks": count,
        "p50_ms": percentile(totals, 50),
        "p95_ms": percentile(totals, 95),
        "p99_ms": percentile(totals, 99),
        "mean_ms": statistics.fmean(totals),
        "create_p50_ms": percentile(creates, 50),
        "create_p95_ms": percentile(creates, 95),
    }


async def create_backlog(url: str, count: int, creators: int) -> tuple[list[str], float]:
    """Create ``count`` diamond tasks (their first steps enqueued) while no worker runs; returns ids and rate."""
    connections = [await connect(url) for _ in range(creators)]
    transport = PgmqTransport()
    uuids: list[str] = []
    started = time.perf_counter()

    async def create_some(conn: Connection, indexes: range) -> None:
        for i in indexes:
            request = TaskRequest(namespace="bench", name="bench_diamond", context={"i": i, "run": started})
            uuids.append(str((await create_task(conn, transport, request, env="bench")).task_uuid))

    await asyncio.gather(*(create_some(c, range(k, count, creators)) for k, c in enumerate(connections)))
    rate = count / (time.perf_counter() - started)
    await connections[0].execute("ANALYZE")  # statistics as a database in service would have them
    for conn in connections:
        await conn.close()
    return uuids, rate


async def drain_backlog(url: str, uuids: list[str], clock: CpuClock | None = None) -> dict[str, Any]:
    """Wait until every task settled; the engine's time runs from the first claim to the last completion, both
    read from the database (transaction timestamps), so process start-up is not counted (nor is it in the CPU
    figures: the clock starts at the first claim)."""
    conn = await connect(url)
    while clock is not None:
        claimed = await (
            await conn.execute("SELECT 1 FROM tasker.workflow_step_transitions WHERE to_state = 'in_progress' LIMIT 1")
        ).fetchone()
        if claimed:
            await clock.start()
            break
        await asyncio.sleep(0.01)
    remaining = set(uuids)
    while remaining:
        rows = await (
            await conn.execute(
                "SELECT task_uuid::text AS id FROM tasker.tasks WHERE complete AND task_uuid = ANY(%s::uuid[])",
                [list(remaining)],
            )
        ).fetchall()
        remaining -= {r["id"] for r in rows}
        await asyncio.sleep(0.2)
    row = await (
        await conn.execute(
            """
            SELECT extract(epoch FROM max(t.completed_at) - min(st.created_at)) AS seconds
            FROM tasker.tasks t
            JOIN tasker.workflow_steps s ON s.task_uuid = t.task_uuid
            JOIN tasker.workflow_step_transitions st ON st.workflow_step_uuid = s.workflow_step_uuid
                 AND st.to_state = 'in_progress'
            WHERE t.task_uuid = ANY(%s::uuid[])
            """,
            [uuids],
        )
    ).fetchone()
    await conn.close()
    seconds = float(row["seconds"]) if row else float("nan")
    cpu = await clock.per_step_ms(4 * len(uuids)) if clock is not None else None
    return {
        "tasks": len(uuids),
        "steps": 4 * len(uuids),
        "elapsed_s": seconds,
        "steps_per_s": 4 * len(uuids) / seconds,
        "cpu_ms_per_step": cpu,
    }


HOP_PROFILE = """
WITH steps AS (
    SELECT s.workflow_step_uuid, n.name, t.created_at AS task_created
    FROM tasker.tasks t
    JOIN tasker.named_tasks nt ON nt.named_task_uuid = t.named_task_uuid AND nt.name = 'bench_linear'
    JOIN tasker.workflow_steps s ON s.task_uuid = t.task_uuid
    JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid
),
hops AS (
    SELECT st.name,
           max(x.created_at) FILTER (WHERE x.to_state = 'enqueued') AS enqueued,
           max(x.created_at) FILTER (WHERE x.to_state = 'in_progress') AS claimed,
           max(x.created_at) FILTER (WHERE x.to_state = 'enqueued_for_orchestration') AS stored,
           max(x.created_at) FILTER (WHERE x.to_state = 'complete') AS completed
    FROM steps st
    JOIN tasker.workflow_step_transitions x ON x.workflow_step_uuid = st.workflow_step_uuid
    GROUP BY st.workflow_step_uuid, st.name
)
SELECT name,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM claimed - enqueued) * 1000) AS enqueue_to_claim,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored - claimed) * 1000) AS claim_to_store,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed - stored) * 1000) AS store_to_complete
FROM hops GROUP BY name ORDER BY name
"""


async def hop_profile(url: str) -> list[dict[str, Any]]:
    """Median milliseconds between a step's transitions in the latency run, read from the transition rows.

    A transition's ``created_at`` is its transaction's start, so ``enqueue_to_claim`` spans the transaction that
    enqueued the step (its statements and COMMIT), the wake-up and the claim, and is 0 when the worker claimed the
    step in the transaction that enqueued it (the fast path's continuation); ``claim_to_store`` spans the claiming
    transaction (for a continuation claim: the whole store transaction of the step before), the handler and the
    hand-over to the completer; ``store_to_complete`` is 0 when the worker applied the result in its own store
    transaction (the fast path) and the orchestrator hop otherwise."""
    conn = await connect(url)
    try:
        return list(await (await conn.execute(HOP_PROFILE)).fetchall())
    finally:
        await conn.close()


async def setup(url: str) -> None:
    conn = await connect(url)
    await migrate(conn)
    await template_register_paths(conn, ROOT / "bench" / "templates")
    await conn.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-tasks", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--throughput-tasks", type=int, default=2000)
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=64)
    parser.add_argument("--creators", type=int, default=4, help="connections creating tasks in the throughput run")
    parser.add_argument("--database-url", default=os.environ.get("TASKER_DATABASE_URL"))
    args = parser.parse_args(argv)
    # SIGTERM ends the run like Ctrl-C, so the ``finally`` blocks stop the orchestrator and worker processes (left
    # running, they would compete with the next run on the database it recreates)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    url = prepare_database(args.database_url)
    asyncio.run(setup(url))
    report: dict[str, Any] = {}
    services = f"{args.orchestrators} orchestrator and {args.workers} worker process(es)"
    if args.latency_tasks:
        processes = start_services(url, args.orchestrators, args.workers, args.worker_concurrency)
        try:
            time.sleep(1.5)
            clock = CpuClock(url, processes, args.orchestrators) if CpuClock.available() else None
            report["latency"] = asyncio.run(measure_latency(url, args.latency_tasks, args.warmup, clock=clock))
        finally:
            stop_services(processes)
        lat = report["latency"]
        print(
            f"linear 4-step latency over {lat['tasks']} tasks (the bench uses 2 connections; {services}): "
            f"p50 {lat['p50_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms; "
            f"task creation p50 {lat['create_p50_ms']:.2f} ms, p95 {lat['create_p95_ms']:.2f} ms"
        )
        if lat["cpu_ms_per_step"]:
            print(cpu_line(lat["cpu_ms_per_step"]))
        report["hops"] = asyncio.run(hop_profile(url))
        print("hop profile, median ms (from the transition rows):  enqueue→claim  claim→store  store→complete")
        for hop in report["hops"]:
            print(
                f"  {hop['name']:<16} {hop['enqueue_to_claim']:>13.2f} {hop['claim_to_store']:>12.2f} "
                f"{hop['store_to_complete']:>15.2f}"
            )
    if args.throughput_tasks:
        uuids, created_rate = asyncio.run(create_backlog(url, args.throughput_tasks, args.creators))
        processes = start_services(url, args.orchestrators, args.workers, args.worker_concurrency)
        try:
            clock = CpuClock(url, processes, args.orchestrators) if CpuClock.available() else None
            report["throughput"] = tp = asyncio.run(drain_backlog(url, uuids, clock))
        finally:
            stop_services(processes)
        tp["created_per_s"] = created_rate
        print(
            f"diamond throughput: {tp['tasks']} concurrent tasks ({tp['steps']} steps) in {tp['elapsed_s']:.2f} s = "
            f"{tp['steps_per_s']:.0f} steps/s ({services}, worker concurrency {args.worker_concurrency}); "
            f"the backlog was created beforehand at {created_rate:.0f} tasks/s over {args.creators} connections"
        )
        if tp["cpu_ms_per_step"]:
            print(cpu_line(tp["cpu_ms_per_step"]))
    return report


if __name__ == "__main__":
    main()
