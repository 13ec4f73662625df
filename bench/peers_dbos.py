"""DBOS workload for bench/peers.py: a ``@DBOS.workflow`` calling four ``@DBOS.step`` functions, in-process.

Runs in the peer venv (``.cache/peers-venv/bin/python bench/peers_dbos.py URL ...``), never in the project's.
Each chain is one call of the workflow function, which DBOS runs durably in the calling thread: it records the
workflow, then each step's output, then the workflow's outcome in its system database (on PostgreSQL, the database
named by URL). Latency: one chain at a time. Throughput: ``--concurrency`` threads, each calling the workflow in a
loop until ``--throughput-chains`` have run (DBOS's in-process model is threads), timed from the first call to the
last return.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

from dbos import DBOS, DBOSConfig

from peers_common import STEPS, ConnectionWindow, result_line


@DBOS.step()
def add_one(value: int) -> int:
    return value + 1


@DBOS.workflow()
def chain(start: int) -> int:
    value = start
    for _ in range(STEPS):
        value = add_one(value)  # each step reads the previous step's result
    return value


def run_throughput(chains: int, concurrency: int) -> float:
    counter = iter(range(chains))
    lock = threading.Lock()

    def slot() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            if chain(i) != i + STEPS:
                raise RuntimeError(f"chain {i} returned a wrong result")

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(slot) for _ in range(min(concurrency, chains))]:
            future.result()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="postgresql:// URL of the (empty) database DBOS uses as its system database")
    parser.add_argument("--chains", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--throughput-chains", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--pool-size", type=int, default=20, help="DBOS system database pool (its default: 20)")
    args = parser.parse_args()

    logging.getLogger("dbos").setLevel(logging.WARNING)
    config: DBOSConfig = {
        "name": "peers-bench",
        "system_database_url": args.url,
        "sys_db_pool_size": args.pool_size,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    try:
        for i in range(args.warmup):
            chain(-1 - i)
        window = ConnectionWindow(args.url)
        window.start()
        latencies: list[float] = []
        for i in range(args.chains):
            started = time.perf_counter()
            if chain(i) != i + STEPS:
                raise RuntimeError(f"chain {i} returned a wrong result")
            latencies.append((time.perf_counter() - started) * 1000)
        latency_connections = window.stop()

        window = ConnectionWindow(args.url)
        window.start()
        seconds = run_throughput(args.throughput_chains, args.concurrency)
        throughput_connections = window.stop()
    finally:
        DBOS.destroy()
    print(
        result_line(
            version=version("dbos"),
            latencies_ms=latencies,
            latency_connections=latency_connections,
            throughput_chains=args.throughput_chains,
            throughput_seconds=seconds,
            throughput_connections=throughput_connections,
            notes=f"in-process, sys_db_pool_size {args.pool_size}, {args.concurrency} calling threads",
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
