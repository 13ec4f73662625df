"""What every connection runs with, and what the engine's hot-path pools add: plans that stay cheap whatever the
planner statistics say (no JIT anywhere; no sequential scans where every statement finds rows by key)."""

from __future__ import annotations

from uuid import uuid4

from tasker.store.db import Connection, connect, create_pool


async def _settings(conn: Connection) -> dict[str, str]:
    names = ("jit", "enable_seqscan", "synchronous_commit", "plan_cache_mode", "TimeZone")
    rows = [(await (await conn.execute(f"SHOW {name}")).fetchone()) or {} for name in names]
    return {name: str(next(iter(row.values()), "")) for name, row in zip(names, rows, strict=True)}


async def test_a_plain_connection_has_no_jit_and_keeps_sequential_scans(db_url: str) -> None:
    conn = await connect(db_url)
    try:
        settings = await _settings(conn)
    finally:
        await conn.close()
    assert settings["jit"] == "off" and settings["enable_seqscan"] == "on"
    assert settings["plan_cache_mode"] == "force_generic_plan" and settings["TimeZone"] == "UTC"


async def test_the_engine_pools_price_out_sequential_scans_and_commit_asynchronously(db_url: str) -> None:
    pool = create_pool(db_url, min_size=1, max_size=1, durable_commits=False, key_lookups=True)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            settings = await _settings(conn)
            plan = await (
                await conn.execute("EXPLAIN SELECT * FROM tasker.workflow_steps WHERE task_uuid = %s", [uuid4()])
            ).fetchall()
    finally:
        await pool.close()
    assert settings["jit"] == "off" and settings["enable_seqscan"] == "off" and settings["synchronous_commit"] == "off"
    assert "Seq Scan" not in " ".join(row["QUERY PLAN"] for row in plan)  # an empty table: a seq scan otherwise
