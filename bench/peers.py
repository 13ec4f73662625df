"""Tasker beside its peers: the same 4-step linear chain on Tasker, DBOS and Procrastinate, on one PostgreSQL server,
in one run, with the ratios Tasker/peer.

    .venv/bin/python bench/peers.py --quick                        # a minute or two: small counts
    .venv/bin/python bench/peers.py                                # the figures of the README
    .venv/bin/python bench/peers.py --only tasker --chains 500     # re-measure Tasker alone
    .venv/bin/python bench/peers.py --database-url postgresql://postgres@127.0.0.1:5432/postgres --json out.json

The chain: four steps, each reading the previous step's result and adding one.
- Tasker: template ``bench/templates/peers_chain.yaml`` (handler ``bench.handlers.AddOne``), one orchestrator and
  one worker process (started as bench/runtime.py starts them), tasks created through ``create_task``.
- DBOS: a ``@DBOS.workflow`` calling four ``@DBOS.step`` functions, in-process (bench/peers_dbos.py).
- Procrastinate: a job that defers the next, four jobs, one separate worker process (bench/peers_procrastinate.py).

DBOS and Procrastinate are pinned (``PEER_PACKAGES`` here, their dependencies in bench/peers-constraints.txt) and
installed by this script into ``.cache/peers-venv``, a venv of their own, so the project's dependencies are
untouched; their workloads run as subprocesses of that venv's python. The venv is rebuilt when the pins change.

Each system gets a fresh database (``peers_tasker``, ``peers_dbos``, ``peers_procrastinate``) on the server named
by ``--database-url`` (default: the PostgreSQL 15 at 127.0.0.1:5432), dropped afterwards.

Latency: ``--chains`` chains one at a time after ``--warmup`` chains, from just before the submit until the system
reports the last step done (Tasker: the task-settled NOTIFY; DBOS: the workflow call returns; Procrastinate: a
NOTIFY from a trigger when the last job is marked succeeded). Throughput: ``--throughput-chains`` chains with
``--concurrency`` in flight (each slot submits its next chain when its previous one is done), steps/s = 4 chains /
wall time from the first submit to the last completion. For each measurement the script prints how many server
connections ran a statement (on this machine a lone connection is several times slower per round trip than two
busy ones, so every measurement must use at least two; a warning says when one did not).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [p for p in (str(BENCH), str(ROOT / "src")) if p not in sys.path]

import runtime  # noqa: E402  (bench/runtime.py: database setup, services, latency loop, percentiles)
from peers_common import STEPS, ConnectionWindow, closed_loop  # noqa: E402
from tasker.engine.task_requests import create_task  # noqa: E402
from tasker.messaging.pgmq import PgmqTransport  # noqa: E402
from tasker.model.requests import TaskRequest  # noqa: E402
from tasker.store.db import Connection, connect  # noqa: E402

PEER_PACKAGES = ("dbos==3.4.0", "procrastinate==3.10.0")
CONSTRAINTS = BENCH / "peers-constraints.txt"
PEER_VENV = ROOT / ".cache" / "peers-venv"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SYSTEMS = ("tasker", "dbos", "procrastinate")
TEMPLATE = "peers_chain"


@dataclass
class Figures:
    system: str
    version: str
    p50_ms: float
    p95_ms: float
    p99_ms: float
    latency_connections: int
    steps_per_s: float
    throughput_chains: int
    throughput_seconds: float
    throughput_connections: int
    notes: str


class BenchError(Exception):
    """A failure worth one clear line (a peer install that failed, a workload that crashed)."""


# --- databases ------------------------------------------------------------------------------------------------


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database replaced by ``name``; URLs only, as DBOS takes SQLAlchemy URLs."""
    parts = urlsplit(admin_url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise BenchError(f"--database-url must be a postgresql:// URL, got {admin_url!r}")
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def fresh_database(admin_url: str, name: str) -> Iterator[str]:
    """A database created empty for one system and dropped afterwards; yields its URL."""

    def run(statement: str) -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    run("DROP DATABASE IF EXISTS {} WITH (FORCE)")
    run("CREATE DATABASE {}")
    try:
        yield database_url(admin_url, name)
    finally:
        run("DROP DATABASE IF EXISTS {} WITH (FORCE)")


def server_version(admin_url: str) -> str:
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.OperationalError as exc:
        raise BenchError(f"cannot connect to {admin_url}: {str(exc).strip()}") from None
    return str(row[0]) if row else "?"


# --- the peer venv --------------------------------------------------------------------------------------------


def peer_python() -> Path:
    """The peer venv's python, (re)built when the pins changed; a failed install is one clear error."""
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / "peers-stamp"
    wanted = hashlib.sha256((CONSTRAINTS.read_text() + "\n".join(PEER_PACKAGES)).encode()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"installing {', '.join(PEER_PACKAGES)} into {PEER_VENV} ...", flush=True)
    shutil.rmtree(PEER_VENV, ignore_errors=True)
    steps = [
        [sys.executable, "-m", "venv", str(PEER_VENV)],
        [str(python), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), *PEER_PACKAGES],
        [str(python), "-c", "import dbos, procrastinate, psycopg"],
    ]
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(PEER_VENV, ignore_errors=True)
            lines = (done.stderr + done.stdout).splitlines()
            tail = "\n".join(x for x in lines if x.strip() and not x.startswith("WARNING: Location"))[-2000:]
            raise BenchError(f"installing the peers failed at `{' '.join(command[:4])} ...`:\n{tail}")
    stamp.write_text(wanted)
    return python


# --- Tasker ---------------------------------------------------------------------------------------------------


async def tasker_throughput(url: str, chains: int, concurrency: int, creators: int) -> float:
    """Closed loop of ``chains`` tasks, ``concurrency`` in flight, created over ``creators`` connections and
    awaited on one listening connection; returns the wall time in seconds."""
    listener = await connect(url)
    settled = runtime.Settled(listener)
    await settled.start()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(creators):
        pool.put_nowait(await connect(url))
    transport = PgmqTransport()

    async def run_chain(i: int) -> None:
        conn = await pool.get()
        try:
            request = TaskRequest(namespace="bench", name=TEMPLATE, context={"start": 0, "i": i, "run": started})
            created = await create_task(conn, transport, request, env="bench")
        finally:
            pool.put_nowait(conn)
        await settled.wait_for(str(created.task_uuid), timeout=300)

    started = time.perf_counter()
    await closed_loop(run_chain, chains, concurrency)
    seconds = time.perf_counter() - started
    while not pool.empty():
        await pool.get_nowait().close()
    await listener.close()
    return seconds


async def check_results(url: str, expected: int) -> None:
    """Every chain ran and ended with value 4 (the chain's arithmetic was really done)."""
    conn = await connect(url)
    row = await (
        await conn.execute(
            "SELECT count(*) AS chains,"
            " count(*) FILTER (WHERE (s.results->'result'->>'value') IS DISTINCT FROM '4') AS wrong"
            " FROM tasker.workflow_steps s JOIN tasker.named_steps n ON n.named_step_uuid = s.named_step_uuid"
            " WHERE n.name = %s",
            [f"{TEMPLATE}_{STEPS}"],
        )
    ).fetchone()
    await conn.close()
    if not row or row["chains"] != expected or row["wrong"]:
        raise BenchError(f"tasker: expected {expected} chains ending with value {STEPS}, found {row}")


def run_tasker(url: str, args: argparse.Namespace) -> Figures:
    asyncio.run(runtime.setup(url))
    processes = runtime.start_services(url, 1, 1, args.worker_concurrency)
    try:
        window = ConnectionWindow(url)
        window.start()
        latency = asyncio.run(runtime.measure_latency(url, args.chains, args.warmup, template=TEMPLATE))
        latency_connections = window.stop()
        window = ConnectionWindow(url)
        window.start()
        seconds = asyncio.run(tasker_throughput(url, args.throughput_chains, args.concurrency, args.creators))
        throughput_connections = window.stop()
    finally:
        runtime.stop_services(processes)
    asyncio.run(check_results(url, args.warmup + args.chains + args.throughput_chains))
    from importlib.metadata import version

    return Figures(
        system="tasker",
        version=version("tasker"),
        p50_ms=latency["p50_ms"],
        p95_ms=latency["p95_ms"],
        p99_ms=latency["p99_ms"],
        latency_connections=latency_connections,
        steps_per_s=STEPS * args.throughput_chains / seconds,
        throughput_chains=args.throughput_chains,
        throughput_seconds=seconds,
        throughput_connections=throughput_connections,
        notes=(
            f"1 orchestrator + 1 worker process (concurrency {args.worker_concurrency}); the bench creates over "
            f"{args.creators} connections and listens on 1; task creation p50 {latency['create_p50_ms']:.1f} ms"
        ),
    )


# --- the peers ------------------------------------------------------------------------------------------------


def run_peer(system: str, python: Path, url: str, args: argparse.Namespace) -> Figures:
    """Runs bench/peers_<system>.py in the peer venv and reads its result line."""
    common = ["--chains", str(args.chains), "--warmup", str(args.warmup)]
    common += ["--throughput-chains", str(args.throughput_chains), "--concurrency", str(args.concurrency)]
    if system == "dbos":
        command = [str(python), str(BENCH / "peers_dbos.py"), url, *common]
    else:
        command = [str(python), str(BENCH / "peers_procrastinate.py"), "bench", url, *common]
        command += ["--concurrency-worker", str(args.procrastinate_concurrency)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("PEERS-RESULT ")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-25:])
        raise BenchError(f"{system}: the workload failed (exit {done.returncode}):\n{tail}")
    data: dict[str, Any] = json.loads(lines[-1].removeprefix("PEERS-RESULT "))
    latencies = data["latencies_ms"]
    return Figures(
        system=system,
        version=data["version"],
        p50_ms=runtime.percentile(latencies, 50),
        p95_ms=runtime.percentile(latencies, 95),
        p99_ms=runtime.percentile(latencies, 99),
        latency_connections=data["latency_connections"],
        steps_per_s=data["throughput_steps"] / data["throughput_seconds"],
        throughput_chains=data["throughput_chains"],
        throughput_seconds=data["throughput_seconds"],
        throughput_connections=data["throughput_connections"],
        notes=data["notes"],
    )


def median_figures(runs: list[Figures]) -> Figures:
    """Each figure's median over the rounds (the rounds interleave the systems, so that load from elsewhere on a
    shared machine falls on all of them alike)."""
    first = asdict(runs[0])
    for key, value in first.items():
        if isinstance(value, float):
            first[key] = statistics.median(getattr(r, key) for r in runs)
        elif isinstance(value, int):
            first[key] = round(statistics.median(getattr(r, key) for r in runs))
    return Figures(**first)


# --- report ---------------------------------------------------------------------------------------------------


def print_table(figures: list[Figures]) -> None:
    header = f"{'system':<14} {'version':<9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'steps/s':>8} {'conns':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for f in figures:
        conns = f"{f.latency_connections}/{f.throughput_connections}"
        print(
            f"{f.system:<14} {f.version:<9} {f.p50_ms:>8.1f} {f.p95_ms:>8.1f} {f.p99_ms:>8.1f} "
            f"{f.steps_per_s:>8.0f} {conns:>7}"
        )
    print("conns: server connections that ran a statement during the latency / throughput measurement")
    tasker = next((f for f in figures if f.system == "tasker"), None)
    peers = [f for f in figures if f.system != "tasker"]
    if tasker and peers:
        print("\nTasker/peer (latency: below 1 = Tasker faster; throughput: above 1 = Tasker faster)")
        for p in peers:
            print(
                f"  vs {p.system:<13} p50 {tasker.p50_ms / p.p50_ms:.2f}x  p95 {tasker.p95_ms / p.p95_ms:.2f}x  "
                f"p99 {tasker.p99_ms / p.p99_ms:.2f}x  steps/s {tasker.steps_per_s / p.steps_per_s:.2f}x"
            )
    print()
    for f in figures:
        print(f"{f.system}: {f.notes}; throughput {f.throughput_chains} chains in {f.throughput_seconds:.2f} s")
        if min(f.latency_connections, f.throughput_connections) < 2:
            print(f"  WARNING: {f.system} used fewer than two connections in a measurement: its figure is pessimistic")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL, help=f"server to use (default {DEFAULT_URL})")
    parser.add_argument("--only", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS))
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--chains", type=int, help="sequential chains measured for latency (300; quick 40)")
    parser.add_argument("--warmup", type=int, help="chains run before the latency measurement (30; quick 5)")
    parser.add_argument("--throughput-chains", type=int, help="chains in the throughput run (2000; quick 300)")
    parser.add_argument("--concurrency", type=int, help="chains in flight in the throughput run (200; quick 100)")
    parser.add_argument("--worker-concurrency", type=int, default=64, help="Tasker's worker (64, as bench/runtime.py)")
    parser.add_argument("--procrastinate-concurrency", type=int, default=32, help="Procrastinate's worker")
    parser.add_argument("--creators", type=int, default=4, help="connections creating Tasker tasks (throughput)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every system this many times, interleaved; medians are shown"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    defaults = {"chains": (300, 40), "warmup": (30, 5), "throughput_chains": (2000, 300), "concurrency": (200, 100)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if min(args.rounds, args.chains, args.throughput_chains, args.concurrency) < 1:
        parser.error("--rounds, --chains, --throughput-chains and --concurrency must be at least 1")
    args.systems = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown or not args.systems:
        parser.error(f"--only takes a comma-separated subset of {','.join(SYSTEMS)}; got {args.only!r}")
    return args


def main(argv: list[str] | None = None) -> list[Figures]:
    args = parse_args(argv)
    # SIGTERM ends the run like Ctrl-C, so Tasker's orchestrator and worker are stopped (see bench/runtime.py)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    load = os.getloadavg()
    print(
        f"PostgreSQL {server_version(args.database_url)} at {urlsplit(args.database_url).netloc}; "
        f"{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"latency over {args.chains} chains (after {args.warmup}), throughput {args.throughput_chains} chains "
        f"with {args.concurrency} in flight; {args.rounds} round(s)",
        flush=True,
    )
    python = peer_python() if set(args.systems) & {"dbos", "procrastinate"} else None
    rounds: dict[str, list[Figures]] = {s: [] for s in SYSTEMS if s in args.systems}
    for round_number in range(1, args.rounds + 1):
        for system in rounds:
            started = time.perf_counter()
            with fresh_database(args.database_url, f"peers_{system}") as url:
                f = run_tasker(url, args) if system == "tasker" else run_peer(system, python or Path(), url, args)
            rounds[system].append(f)
            print(
                f"round {round_number}: {system} {f.version}: p50 {f.p50_ms:.1f} ms, p95 {f.p95_ms:.1f} ms, "
                f"p99 {f.p99_ms:.1f} ms, {f.steps_per_s:.0f} steps/s "
                f"({time.perf_counter() - started:.0f} s; load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    figures = [median_figures(runs) for runs in rounds.values()]
    print_table(figures)
    if args.json:
        every = {system: [asdict(f) for f in runs] for system, runs in rounds.items()}
        args.json.write_text(json.dumps({"median": [asdict(f) for f in figures], "rounds": every}, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    try:
        main()
    except BenchError as exc:
        sys.exit(f"bench/peers.py: {exc}")
