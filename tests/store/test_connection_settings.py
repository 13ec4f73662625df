"""What every connection runs with, and what the engine's hot-path pools add: plans that stay cheap whatever the
planner statistics say (no JIT anywhere; only index lookups in nested loops where every statement finds rows by
key)."""

from __future__ import annotations

from uuid import uuid4

from psycopg import sql
from psycopg.adapt import PyFormat
from psycopg.types.array import ListBinaryDumper
from psycopg.types.json import Jsonb

from tasker.store.db import (
    BoolArray,
    Connection,
    Int4Array,
    Int8Array,
    JsonbArray,
    TextArray,
    UuidArray,
    connect,
    create_pool,
)


async def _settings(conn: Connection) -> dict[str, str]:
    names = (
        "jit",
        "enable_seqscan",
        "enable_hashjoin",
        "enable_mergejoin",
        "enable_bitmapscan",
        "synchronous_commit",
        "plan_cache_mode",
        "TimeZone",
    )
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
    assert settings["jit"] == "off" and settings["synchronous_commit"] == "off"
    priced_out = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin", "enable_bitmapscan")
    assert [settings[name] for name in priced_out] == ["off"] * 4
    assert "Seq Scan" not in " ".join(row["QUERY PLAN"] for row in plan)  # an empty table: a seq scan otherwise


async def test_the_engine_pools_plan_the_handler_context_as_key_lookups_on_a_young_database(db_url: str) -> None:
    """The view every claim reads (dependency results included), planned generically as the pools plan it: on
    tables that have never been analysed the planner otherwise merge-joins every step of every task (seen on a
    fresh database), whose cost then grows with the tables."""
    pool = create_pool(db_url, min_size=1, max_size=1, durable_commits=False, key_lookups=True)
    await pool.open(wait=True)
    try:
        async with pool.connection() as conn:
            await conn.execute(
                "PREPARE context_probe(uuid[]) AS"
                " SELECT * FROM tasker_ext.step_handler_context WHERE workflow_step_uuid = ANY ($1)"
            )
            probe = sql.SQL("EXPLAIN EXECUTE context_probe({})").format(sql.Literal([uuid4()]))
            rows = await (await conn.execute(probe)).fetchall()
            await conn.execute("DEALLOCATE context_probe")
    finally:
        await pool.close()
    plan = " ".join(row["QUERY PLAN"] for row in rows)
    for node in ("Seq Scan", "Hash Join", "Merge Join", "Bitmap"):
        assert node not in plan, plan


async def test_lists_go_out_as_binary_arrays_on_plain_and_pooled_connections(db_url: str) -> None:
    """The engine's batches are columns of arrays; the text form escapes every element with a regex."""
    conn = await connect(db_url)
    pool = create_pool(db_url, min_size=1, max_size=1, key_lookups=True)
    await pool.open(wait=True)
    try:
        async with pool.connection() as pooled:
            for c in (conn, pooled):
                assert c.adapters.get_dumper(list, PyFormat.AUTO) is ListBinaryDumper
                cursor = await c.execute("SELECT %s::uuid[] AS ids, %s::text[] AS words", [[uuid4()], ['a "b"']])
                assert (await cursor.fetchone() or {}).get("words") == ['a "b"']
    finally:
        await pool.close()
        await conn.close()


async def test_typed_arrays_round_trip_every_element_type_with_nulls(conn: Connection) -> None:
    """The engine's batch columns (store.db.TypedArray) are dumped by dumpers of their own, element by element:
    what comes back is what went in, NULLs, empty arrays, non-ASCII text and the integer ranges included, and a
    UUID given as text is sent as that UUID."""
    step = uuid4()
    row = await (
        await conn.execute(
            "SELECT %s::uuid[] AS u, %s::text[] AS t, %s::bool[] AS b, %s::int[] AS i, %s::bigint[] AS l,"
            " %s::jsonb[] AS j, %s::uuid[] AS empty",
            [
                UuidArray([step, None, str(step)]),
                TextArray(["enqueued", None, "", "é ∑ '\"{}"]),
                BoolArray([True, None, False]),
                Int4Array([0, -(2**31), 2**31 - 1, None]),
                Int8Array([2**40, None, -1]),
                JsonbArray([Jsonb({"a": [1, "x"]}), None]),
                UuidArray(),
            ],
        )
    ).fetchone()
    assert row == {
        "u": [step, None, step],
        "t": ["enqueued", None, "", "é ∑ '\"{}"],
        "b": [True, None, False],
        "i": [0, -(2**31), 2**31 - 1, None],
        "l": [2**40, None, -1],
        "j": [{"a": [1, "x"]}, None],
        "empty": [],
    }
