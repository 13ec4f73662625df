"""What bench/peers.py and its peer workloads share; imports only the standard library and psycopg, so that it
loads both in the project's venv (Tasker) and in the peer venv (DBOS, Procrastinate).

A workload prints, as its last stdout line, one JSON object made by :func:`result_line`: the raw latencies of the
sequential chains (ms), the throughput run (chains, steps, seconds) and how many connections each measurement used.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

STEPS = 4  # every system runs the same 4-step linear chain: each step reads the previous result and adds one
RESULT_PREFIX = "PEERS-RESULT "


class ConnectionWindow:
    """Counts the distinct server connections (other than its own) that ran a statement on this database between
    :meth:`start` and :meth:`stop`.

    It reads ``pg_stat_activity`` (``state_change`` after the window's start) every ``interval`` seconds from a
    thread, so a connection opened and closed inside the window is still seen; a few queries a second are noise
    next to the hundreds of round trips being measured. The figure matters because on this machine a lone
    connection is several times slower per round trip than two busy ones.
    """

    def __init__(self, url: str, interval: float = 0.25) -> None:
        self.url = url
        self.interval = interval
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._since: Any = None

    def start(self) -> None:
        self._conn = psycopg.connect(self.url, autocommit=True)
        row = self._conn.execute("SELECT clock_timestamp()").fetchone()
        self._since = row[0] if row else None
        self._thread = threading.Thread(target=self._run, name="connection-window", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND state_change >= %s",
            [self._since],
        ).fetchall()
        self.pids.update(r[0] for r in rows)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        if self._conn is not None:
            self._conn.close()
        return len(self.pids)


async def closed_loop(run_chain: Callable[[int], Awaitable[None]], chains: int, concurrency: int) -> None:
    """Runs ``chains`` chains keeping ``concurrency`` in flight: each slot starts its next chain as soon as its
    previous one has finished (``run_chain(i)`` submits chain ``i`` and returns when its last step is done)."""
    import asyncio

    next_index = iter(range(chains))

    async def slot() -> None:
        for i in next_index:
            await run_chain(i)

    await asyncio.gather(*(slot() for _ in range(min(concurrency, chains))))


def result_line(
    *,
    version: str,
    latencies_ms: list[float],
    latency_connections: int,
    throughput_chains: int,
    throughput_seconds: float,
    throughput_connections: int,
    notes: str,
) -> str:
    """The one line a peer workload prints for bench/peers.py to read."""
    payload = {
        "version": version,
        "latencies_ms": latencies_ms,
        "latency_connections": latency_connections,
        "throughput_chains": throughput_chains,
        "throughput_steps": STEPS * throughput_chains,
        "throughput_seconds": throughput_seconds,
        "throughput_connections": throughput_connections,
        "notes": notes,
    }
    return RESULT_PREFIX + json.dumps(payload)
