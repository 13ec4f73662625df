"""Benchmark of the readiness SQL functions at 1K, 10K and 100K tasks.

    .venv/bin/python bench/readiness.py                      # sizes 1000,10000,100000
    .venv/bin/python bench/readiness.py --sizes 1000 --samples 500

Database: with ``TASKER_DATABASE_URL`` a database ``tasker_bench_readiness`` is (re)created on that server and dropped
at the end (``--keep`` keeps it); without it the embedded PostgreSQL 18 in ``.cache/bench-postgres`` is used, with a
database ``tasker_bench`` recreated on every run and kept afterwards.

Data: N tasks of a 4-step diamond (a -> b, a -> c, b -> d, c -> d), loaded set-based with INSERT ... SELECT
generate_series and grown in place from one size to the next. Per 100 tasks: 80 complete; 5 processing (b
in_progress, c enqueued); 5 waiting for a retry an hour away; 5 blocked by a failed root; 4 finishing (d enqueued);
1 with two ready steps. Every step has a realistic transition history (1 to 5 rows).

Timing: for each size, ``--samples`` random tasks; each call is timed on the client (the full round trip, including
psycopg's automatic server-side prepare after 5 runs), alternating between two connections (a lone connection is
slower per round trip on this machine). Separately, the server-side execution and planning times of the same calls
are read from ``EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)`` on a subset of the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # runnable from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from tasker.store.db import CONNECT_OPTIONS, connect  # noqa: E402
from tasker.store.migrate import migrate  # noqa: E402

EMBEDDED_DATABASE = "tasker_bench"
REMOTE_DATABASE = "tasker_bench_readiness"
CONNECTIONS = 2

# (kind, share of every 100 tasks, task state)
KINDS = [
    ("done", 80, "complete"),
    ("processing", 5, "steps_in_process"),
    ("retrying", 5, "waiting_for_dependencies"),
    ("blocked", 5, "blocked_by_failures"),
    ("finishing", 4, "steps_in_process"),
    ("ready", 1, "waiting_for_dependencies"),
]
# (kind, step, current state)
PLAN = [
    ("done", "a", "complete"),
    ("done", "b", "complete"),
    ("done", "c", "complete"),
    ("done", "d", "complete"),
    ("processing", "a", "complete"),
    ("processing", "b", "in_progress"),
    ("processing", "c", "enqueued"),
    ("processing", "d", "pending"),
    ("retrying", "a", "complete"),
    ("retrying", "b", "complete"),
    ("retrying", "c", "waiting_for_retry"),
    ("retrying", "d", "pending"),
    ("blocked", "a", "error"),
    ("blocked", "b", "pending"),
    ("blocked", "c", "pending"),
    ("blocked", "d", "pending"),
    ("finishing", "a", "complete"),
    ("finishing", "b", "complete"),
    ("finishing", "c", "complete"),
    ("finishing", "d", "enqueued"),
    ("ready", "a", "complete"),
    ("ready", "b", "pending"),
    ("ready", "c", "pending"),
    ("ready", "d", "pending"),
]
# the transition history that leads to each current state
PATHS = {
    "pending": ["pending"],
    "enqueued": ["pending", "enqueued"],
    "in_progress": ["pending", "enqueued", "in_progress"],
    "complete": ["pending", "enqueued", "in_progress", "enqueued_for_orchestration", "complete"],
    "waiting_for_retry": [
        "pending",
        "enqueued",
        "in_progress",
        "enqueued_as_error_for_orchestration",
        "waiting_for_retry",
    ],
    "error": ["pending", "enqueued", "in_progress", "enqueued_as_error_for_orchestration", "error"],
}
EDGES = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]

QUERIES = {
    "get_step_readiness_status(task)": "SELECT * FROM tasker.get_step_readiness_status(%s)",
    "get_task_execution_context(task)": "SELECT * FROM tasker.get_task_execution_context(%s)",
    "get_next_ready_tasks(5)": "SELECT * FROM tasker.get_next_ready_tasks(5)",
}


@dataclass
class Result:
    size: int
    query: str
    client_p50_ms: float
    client_p95_ms: float
    server_exec_p50_ms: float
    server_plan_p50_ms: float


def _kind_case() -> str:
    parts, bound = [], 0
    for kind, share, _ in KINDS:
        bound += share
        parts.append(f"WHEN g %% 100 < {bound} THEN '{kind}'")
    return "CASE " + " ".join(parts) + " END"


def _values(rows: Sequence[tuple[Any, ...]]) -> str:
    def literal(value: Any) -> str:
        if isinstance(value, list):
            return "ARRAY[" + ", ".join(literal(v) for v in value) + "]::text[]"
        return "'" + str(value).replace("'", "''") + "'"

    return ", ".join("(" + ", ".join(literal(v) for v in row) + ")" for row in rows)


def _setup(conn: psycopg.Connection[Any]) -> str:
    """Namespace, named task and named steps (once); returns the named task uuid."""
    row = conn.execute("SELECT named_task_uuid FROM tasker.named_tasks WHERE name = 'bench_diamond'").fetchone()
    if row is not None:
        return str(row[0])
    ns = conn.execute("INSERT INTO tasker.task_namespaces (name) VALUES ('bench') RETURNING task_namespace_uuid")
    ns_uuid = ns.fetchone()[0]  # type: ignore[index]
    nt = conn.execute(
        "INSERT INTO tasker.named_tasks (task_namespace_uuid, name) VALUES (%s, 'bench_diamond') RETURNING *",
        [ns_uuid],
    )
    nt_uuid = str(nt.fetchone()[0])  # type: ignore[index]
    for letter in "abcd":
        conn.execute("INSERT INTO tasker.named_steps (name) VALUES (%s)", [f"bench_{letter}"])
    return nt_uuid


def load(conn: psycopg.Connection[Any], start: int, stop: int) -> None:
    """Add tasks numbered start..stop-1, with their steps, edges and transitions, in one transaction."""
    named_task_uuid = _setup(conn)
    batch = str(start)
    kinds = _values([(k, state) for k, _, state in KINDS])
    plan = _values(PLAN)
    paths = _values([(state, path) for state, path in PATHS.items()])
    edges = _values([(f"bench_{a}", f"bench_{b}") for a, b in EDGES])
    with conn.transaction():
        conn.execute(
            f"""
            INSERT INTO tasker.tasks (named_task_uuid, identity_hash, correlation_id, priority, tags, complete,
                                     created_at, requested_at)
            SELECT %(nt)s, 'bench-' || g, gen_random_uuid(), g %% 7,
                   jsonb_build_object('kind', k.kind, 'batch', %(batch)s::text), k.kind = 'done', ts.at, ts.at
            FROM generate_series(%(start)s, %(stop)s - 1) g
            CROSS JOIN LATERAL (SELECT {_kind_case()} AS kind) k
            CROSS JOIN LATERAL (SELECT timezone('utc', now()) - (g %% 7200) * interval '1 second' AS at) ts
            """,
            {"nt": named_task_uuid, "batch": batch, "start": start, "stop": stop},
        )
        conn.execute(
            f"""
            INSERT INTO tasker.task_transitions (task_uuid, to_state, from_state, sort_key, most_recent, created_at)
            SELECT t.task_uuid, s.to_state, s.from_state, s.sort_key, s.most_recent, t.created_at
            FROM tasker.tasks t
            JOIN (VALUES {kinds}) AS k (kind, state) ON k.kind = t.tags ->> 'kind'
            CROSS JOIN LATERAL (VALUES ('pending', NULL, 1, false), (k.state, 'pending', 2, true))
                AS s (to_state, from_state, sort_key, most_recent)
            WHERE t.tags ->> 'batch' = %(batch)s
            """,
            {"batch": batch},
        )
        conn.execute(
            f"""
            INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid, processed, processed_at, in_process,
                                              attempts, last_attempted_at, max_attempts, retryable)
            SELECT t.task_uuid, ns.named_step_uuid, p.state = 'complete',
                   CASE WHEN p.state = 'complete' THEN t.created_at END,
                   p.state = 'in_progress',
                   CASE p.state WHEN 'pending' THEN 0 WHEN 'enqueued' THEN 0 WHEN 'error' THEN 3 ELSE 1 END,
                   CASE WHEN p.state NOT IN ('pending', 'enqueued') THEN t.created_at END,
                   3, true
            FROM tasker.tasks t
            JOIN (VALUES {plan}) AS p (kind, letter, state) ON p.kind = t.tags ->> 'kind'
            JOIN tasker.named_steps ns ON ns.name = 'bench_' || p.letter
            WHERE t.tags ->> 'batch' = %(batch)s
            """,
            {"batch": batch},
        )
        conn.execute(
            f"""
            INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name)
            SELECT parent.workflow_step_uuid, child.workflow_step_uuid, 'provides'
            FROM tasker.tasks t
            JOIN tasker.workflow_steps parent ON parent.task_uuid = t.task_uuid
            JOIN tasker.named_steps pn ON pn.named_step_uuid = parent.named_step_uuid
            JOIN tasker.workflow_steps child ON child.task_uuid = t.task_uuid
            JOIN tasker.named_steps cn ON cn.named_step_uuid = child.named_step_uuid
            JOIN (VALUES {edges}) AS e (p, c) ON e.p = pn.name AND e.c = cn.name
            WHERE t.tags ->> 'batch' = %(batch)s
            """,
            {"batch": batch},
        )
        conn.execute(
            f"""
            INSERT INTO tasker.workflow_step_transitions
                (workflow_step_uuid, to_state, from_state, metadata, sort_key, most_recent, created_at)
            SELECT ws.workflow_step_uuid, path.states[i], path.states[i - 1],
                   CASE WHEN i = n AND path.states[i] = 'waiting_for_retry'
                        THEN jsonb_build_object('retry_at', to_char(timezone('utc', now()) + interval '1 hour',
                                                                    'YYYY-MM-DD"T"HH24:MI:SS.US'))
                        ELSE '{{}}'::jsonb END,
                   i, i = n, t.created_at + i * interval '10 milliseconds'
            FROM tasker.tasks t
            JOIN tasker.workflow_steps ws ON ws.task_uuid = t.task_uuid
            JOIN tasker.named_steps ns ON ns.named_step_uuid = ws.named_step_uuid
            JOIN (VALUES {plan}) AS p (kind, letter, state)
                 ON p.kind = t.tags ->> 'kind' AND 'bench_' || p.letter = ns.name
            JOIN (VALUES {paths}) AS path (state, states) ON path.state = p.state
            CROSS JOIN LATERAL (SELECT cardinality(path.states) AS n) len
            CROSS JOIN LATERAL generate_series(1, len.n) i
            WHERE t.tags ->> 'batch' = %(batch)s
            """,
            {"batch": batch},
        )


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def measure(conns: list[psycopg.Connection[Any]], size: int, samples: int) -> list[Result]:
    tasks = [
        row[0] for row in conns[0].execute("SELECT task_uuid FROM tasker.tasks ORDER BY random() LIMIT %s", [samples])
    ]
    results = []
    for label, query in QUERIES.items():
        takes_task = "%s" in query
        for i in range(min(20, len(tasks))):  # warm up both connections and their prepared statements
            conns[i % len(conns)].execute(query, [tasks[i]] if takes_task else None).fetchall()
        client: list[float] = []
        for i, task in enumerate(tasks):
            conn = conns[i % len(conns)]
            began = time.perf_counter()
            conn.execute(query, [task] if takes_task else None).fetchall()
            client.append((time.perf_counter() - began) * 1000)
        execution: list[float] = []
        planning: list[float] = []
        for task in tasks[: max(1, min(50, len(tasks)))]:
            row = (
                conns[0]
                .execute(
                    "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) " + query,
                    [task] if takes_task else None,
                )
                .fetchone()
            )
            assert row is not None
            plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
            execution.append(float(plan[0]["Execution Time"]))
            planning.append(float(plan[0]["Planning Time"]))
        results.append(
            Result(
                size=size,
                query=label,
                client_p50_ms=statistics.median(client),
                client_p95_ms=_percentile(client, 95),
                server_exec_p50_ms=statistics.median(execution),
                server_plan_p50_ms=statistics.median(planning),
            )
        )
    return results


def _bench_database(keep: bool) -> tuple[str, str | None]:
    """(url of a fresh bench database, admin url to drop it afterwards or None to keep it)."""
    given = os.environ.get("TASKER_DATABASE_URL")
    if given:
        admin, name = given, REMOTE_DATABASE
    else:
        from tasker.store.embedded import start_embedded

        admin, name = start_embedded(ROOT / ".cache" / "bench-postgres", database="postgres"), EMBEDDED_DATABASE
        keep = True
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin, dbname=name), None if keep else admin


async def _migrate(url: str) -> None:
    conn = await connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


def run(url: str, sizes: list[int], samples: int) -> list[Result]:
    asyncio.run(_migrate(url))
    results: list[Result] = []
    conns = [psycopg.connect(url, autocommit=True, options=CONNECT_OPTIONS) for _ in range(CONNECTIONS)]
    try:
        loaded = conns[0].execute("SELECT count(*) FROM tasker.tasks").fetchone()[0]  # type: ignore[index]
        for size in sorted(sizes):
            began = time.perf_counter()
            if size > loaded:
                load(conns[0], loaded, size)
                loaded = size
            conns[0].execute("ANALYZE")
            counts = (
                conns[0]
                .execute(
                    "SELECT (SELECT count(*) FROM tasker.tasks) AS tasks,"
                    " (SELECT count(*) FROM tasker.workflow_steps) AS steps,"
                    " (SELECT count(*) FROM tasker.workflow_step_transitions) AS step_transitions,"
                    " (SELECT count(*) FROM tasker.get_next_ready_tasks(1000000)) AS tasks_with_work"
                )
                .fetchone()
            )
            assert counts is not None
            print(
                f"loaded N={size:,}: {counts[0]:,} tasks, {counts[1]:,} steps, {counts[2]:,} step transitions,"
                f" {counts[3]:,} tasks with ready steps ({time.perf_counter() - began:.1f} s incl. ANALYZE)",
                flush=True,
            )
            results.extend(measure(conns, size, samples))
    finally:
        for conn in conns:
            conn.close()
    return results


def report(results: list[Result], samples: int) -> None:
    print()
    print(f"client: full round trip, median/p95 of {samples} random tasks, {CONNECTIONS} connections alternately")
    print("server: EXPLAIN (ANALYZE, TIMING OFF) execution and planning time, median of up to 50 calls")
    header = f"{'N tasks':>9} | {'function':<34} | {'client p50':>10} | {'client p95':>10} | {'server exec':>11} |"
    header += f" {'server plan':>11}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.size:>9,} | {r.query:<34} | {r.client_p50_ms:>7.3f} ms | {r.client_p95_ms:>7.3f} ms |"
            f" {r.server_exec_p50_ms:>8.3f} ms | {r.server_plan_p50_ms:>8.3f} ms"
        )


def main(argv: list[str] | None = None, *, database_url: str | None = None) -> list[Result]:
    """Run the benchmark; with ``database_url`` that (already created) database is used as it is."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated task counts")
    parser.add_argument("--samples", type=int, default=200, help="random tasks timed per function and size")
    parser.add_argument("--keep", action="store_true", help="keep the bench database on TASKER_DATABASE_URL")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    drop_on: str | None = None
    if database_url is None:
        database_url, drop_on = _bench_database(args.keep)
    try:
        results = run(database_url, sizes, args.samples)
    finally:
        if drop_on is not None:
            with psycopg.connect(drop_on, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(REMOTE_DATABASE)))
    report(results, args.samples)
    return results


if __name__ == "__main__":
    main()
