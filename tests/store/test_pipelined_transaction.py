"""store.db.pipelined_transaction: BEGIN and COMMIT travel with the statements, and the transaction is still all
or nothing, whether a statement fails on the server, the caller raises, or the block is nested."""

from __future__ import annotations

import psycopg
import pytest

from tasker.store.db import Connection, pipelined_transaction


async def _probe(conn: Connection) -> None:
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS pipelined_probe (n int)")
    await conn.execute("TRUNCATE pipelined_probe")


async def _rows(conn: Connection) -> list[int]:
    rows = await (await conn.execute("SELECT n FROM pipelined_probe ORDER BY n")).fetchall()
    return [row["n"] for row in rows]


async def test_the_statements_commit_together_and_answers_are_read_after(conn: Connection) -> None:
    await _probe(conn)
    async with pipelined_transaction(conn):
        await conn.execute("INSERT INTO pipelined_probe VALUES (1)")
        inside = await conn.execute("SELECT count(*) AS n FROM pipelined_probe")
        await conn.execute("INSERT INTO pipelined_probe VALUES (2)")
    assert await inside.fetchall() == [{"n": 1}]
    assert await _rows(conn) == [1, 2]
    assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE


async def test_a_statement_failing_on_the_server_rolls_back_everything(conn: Connection) -> None:
    await _probe(conn)
    with pytest.raises(psycopg.errors.DivisionByZero):
        async with pipelined_transaction(conn):
            await conn.execute("INSERT INTO pipelined_probe VALUES (1)")
            await conn.execute("SELECT 1 / 0")
            await conn.execute("INSERT INTO pipelined_probe VALUES (2)")
    assert conn.info.transaction_status is psycopg.pq.TransactionStatus.IDLE
    assert await _rows(conn) == []


async def test_an_exception_in_the_block_rolls_back_everything(conn: Connection) -> None:
    await _probe(conn)
    with pytest.raises(RuntimeError, match="the caller's"):
        async with pipelined_transaction(conn):
            await conn.execute("INSERT INTO pipelined_probe VALUES (1)")
            raise RuntimeError("the caller's own failure")
    assert await _rows(conn) == []


async def test_nested_it_is_a_savepoint_of_the_open_transaction(conn: Connection) -> None:
    await _probe(conn)
    async with pipelined_transaction(conn):
        await conn.execute("INSERT INTO pipelined_probe VALUES (1)")
        with pytest.raises(RuntimeError):
            async with pipelined_transaction(conn):
                await conn.execute("INSERT INTO pipelined_probe VALUES (2)")
                raise RuntimeError("inner")
        async with conn.transaction():  # psycopg's own, inside: a savepoint too
            await conn.execute("INSERT INTO pipelined_probe VALUES (3)")
    assert await _rows(conn) == [1, 3]
