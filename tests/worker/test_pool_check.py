"""Pooled connections are checked on checkout: one whose backend was terminated (as by a database restart) is
replaced before the caller's statement, so that statement does not fail."""

from __future__ import annotations

from tasker.store.db import Connection, create_pool


async def test_a_pooled_connection_killed_while_idle_is_replaced(conn: Connection, db_url: str) -> None:
    pool = create_pool(db_url, min_size=1, max_size=1, application_name="tasker-pool-check")
    await pool.open(wait=True)
    try:
        async with pool.connection() as pooled:
            before = (await (await pooled.execute("SELECT pg_backend_pid() AS pid")).fetchone() or {})["pid"]
        await conn.execute("SELECT pg_terminate_backend(%s, 10000)", [before])  # waits until it is gone
        async with pool.connection() as pooled:
            after = (await (await pooled.execute("SELECT pg_backend_pid() AS pid")).fetchone() or {})["pid"]
        assert after != before
        async with pool.connection() as pooled:  # a healthy connection is handed out again, unchanged
            again = (await (await pooled.execute("SELECT pg_backend_pid() AS pid")).fetchone() or {})["pid"]
        assert again == after
    finally:
        await pool.close()
