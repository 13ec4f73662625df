"""Batch throughput: rows/s of one batch task (analyzer → N workers over cursor ranges → aggregate), with trivial
per-row work, orchestrator and worker as real processes.

    .venv/bin/python bench/batch.py                               # 1,000 and 100,000 rows, batches of 2,000
    .venv/bin/python bench/batch.py --rows 1000,100000,1000000 --batch-size 5000 --repeats 5

Database: as bench/runtime.py (``TASKER_DATABASE_URL`` names a server on which ``tasker_bench_batch`` is recreated;
without it the embedded PostgreSQL 18 in ``.cache/bench-postgres``). The clock runs from just before
``create_task`` until the NOTIFY that the task settled; rows/s = rows / that time, the median of ``--repeats`` runs
after one warm-up. Each row costs the handler one modular multiplication and an addition; the figures are the
engine's: task creation, the analyzer step, fanning out the worker steps in the analyzer's result transaction,
dispatching and running the workers, and the aggregate step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (str(ROOT), str(ROOT / "src")):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from bench import runtime  # noqa: E402
from tasker import StepContext, StepHandler  # noqa: E402
from tasker.engine.task_requests import create_task  # noqa: E402
from tasker.messaging.pgmq import PgmqTransport  # noqa: E402
from tasker.model.requests import TaskRequest  # noqa: E402
from tasker.model.template import load_template_text  # noqa: E402
from tasker.store.db import connect  # noqa: E402
from tasker.store.migrate import migrate  # noqa: E402
from tasker.store.tasks import task_steps  # noqa: E402
from tasker.store.templates import template_register  # noqa: E402

DATABASE = "tasker_bench_batch"
TEMPLATE = """
name: bench_batch_rows
namespace_name: bench
version: 1.0.0
identity_strategy: always_unique
steps:
  - name: bench_batch_analyze
    type: batchable
    handler:
      callable: bench.batch.Analyze
      initialization: { worker_template_name: bench_batch_worker }
  - name: bench_batch_worker
    type: batch_worker
    depends_on: [bench_batch_analyze]
    handler: { callable: bench.batch.Rows }
    batch_config: { worker_template: bench_batch_worker, cursor_field: row, failure_strategy: fail_fast }
  - name: bench_batch_aggregate
    type: deferred_convergence
    depends_on: [bench_batch_worker]
    handler: { callable: bench.batch.Aggregate }
"""


def row_value(row: int) -> int:
    return (row * 7919) % 1000


class Analyze(StepHandler):
    def call(self, context: StepContext) -> Any:
        rows, size = int(context.get_input("rows")), int(context.get_input("batch_size"))
        if rows == 0:
            return self.no_batches_outcome("no rows", worker_template_name="bench_batch_worker")
        ranges = self.create_cursor_ranges(rows, size)
        return self.batch_analyzer_success(context.get_config("worker_template_name"), ranges, rows)


class Rows(StepHandler):
    def call(self, context: StepContext) -> Any:
        batch = context.batch_inputs
        total = 0
        for row in range(batch.start_cursor, batch.end_cursor):
            total += (row * 7919) % 1000
        return self.batch_worker_success(batch.end_cursor - batch.start_cursor, batch_id=batch.batch_id, total=total)


class Aggregate(StepHandler):
    def call(self, context: StepContext) -> Any:
        workers = self.aggregate_worker_results(context, "bench_batch_worker")
        total = sum(r["total"] for r in workers.results.values())
        return {"workers": workers.worker_count, "rows": workers.items_processed, "total": total}


async def setup(url: str) -> None:
    conn = await connect(url)
    await migrate(conn)
    await template_register(conn, load_template_text(TEMPLATE, "bench/batch.py"), force=True)
    await conn.close()


async def measure(url: str, rows: int, batch_size: int, repeats: int, warmup: int = 1) -> dict[str, Any]:
    creator, listener = await connect(url), await connect(url)
    settled = runtime.Settled(listener)
    await settled.start()
    transport = PgmqTransport()
    expected = sum(row_value(r) for r in range(rows))
    times: list[float] = []
    workers = 0
    for i in range(warmup + repeats):
        context = {"rows": rows, "batch_size": batch_size, "run": i}
        request = TaskRequest(namespace="bench", name="bench_batch_rows", context=context)
        started = time.perf_counter()
        created = await create_task(creator, transport, request, env="bench")
        done = await settled.wait_for(str(created.task_uuid), timeout=600)
        steps = {s["name"]: s for s in await task_steps(creator, created.task_uuid)}
        result = (steps["bench_batch_aggregate"]["results"] or {}).get("result") or {}
        if steps["bench_batch_aggregate"]["state"] != "complete" or result.get("total") != expected:
            raise RuntimeError(f"batch task {created.task_uuid} did not add up: {result}")
        workers = result["workers"]
        if i >= warmup:
            times.append(done - started)
    await creator.close()
    await listener.close()
    elapsed = statistics.median(times)
    return {
        "rows": rows,
        "batch_size": batch_size,
        "workers": workers,
        "median_s": elapsed,
        "best_s": min(times),
        "rows_per_s": rows / elapsed,
        "best_rows_per_s": rows / min(times),
    }


def main(argv: list[str] | None = None, *, database_url: str | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; ``database_url`` runs it on that (migrated or empty) database as it is, for tests."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000,100000", help="comma-separated row counts")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--orchestrators", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-concurrency", type=int, default=16)
    parser.add_argument("--database-url", default=os.environ.get("TASKER_DATABASE_URL"))
    args = parser.parse_args(argv)

    if database_url is not None:
        url = database_url
    else:
        runtime.DATABASE = DATABASE
        url = runtime.prepare_database(args.database_url)
    asyncio.run(setup(url))
    processes = runtime.start_services(url, args.orchestrators, args.workers, args.worker_concurrency)
    try:
        time.sleep(1.5)
        report = []
        for rows in (int(r) for r in args.rows.split(",")):
            figures = asyncio.run(measure(url, rows, args.batch_size, args.repeats))
            report.append(figures)
            print(
                f"batch of {rows:,} rows ({figures['workers']} workers of up to {args.batch_size:,} rows): "
                f"median {figures['median_s'] * 1000:.1f} ms = {figures['rows_per_s']:,.0f} rows/s "
                f"(best {figures['best_rows_per_s']:,.0f} rows/s over {args.repeats} runs; "
                f"{args.orchestrators} orchestrator, {args.workers} worker process(es), "
                f"worker concurrency {args.worker_concurrency})"
            )
        return report
    finally:
        runtime.stop_services(processes)


if __name__ == "__main__":
    main()
