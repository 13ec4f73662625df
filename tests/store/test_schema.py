"""The migrated schema is the seed's: tables, columns, types, keys, relationships, descriptions, constraints."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tasker.store.db import Connection, connect
from tasker.store.migrate import applied_versions, migrate, migrations
from tasker.store.schema_doc import render_type, schema_document
from tests.schema_text import SchemaText, parse, without_generator_bug

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ROOT = FIXTURES.parent.parent


@pytest.fixture(scope="module")
def seed() -> SchemaText:
    return without_generator_bug(parse((FIXTURES / "seed_schema.txt").read_text()))


def test_seed_fixture_parses_to_eleven_tables(seed: SchemaText) -> None:
    assert len(seed.columns) == 11
    assert len(seed.descriptions) == 11
    assert len(seed.foreign_keys) == 14


async def test_catalog_matches_seed_columns_in_order(conn: Connection, seed: SchemaText) -> None:
    rows = await (
        await conn.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type, c.ordinal_position, t.typtype AS type_kind
            FROM information_schema.columns c
            JOIN information_schema.tables tb USING (table_schema, table_name)
            JOIN pg_type t ON t.typname = c.udt_name
            WHERE c.table_schema = 'tasker' AND tb.table_type = 'BASE TABLE'
            ORDER BY c.table_name, c.ordinal_position
            """
        )
    ).fetchall()
    live: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        live.setdefault(row["table_name"], []).append(
            (row["column_name"], render_type(row["data_type"], row["type_kind"]))
        )
    expected = {table: [(name, type_) for name, type_, _ in cols] for table, cols in seed.columns.items()}
    assert set(live) == set(expected), "schema tasker must hold exactly the seed's tables"
    for table, columns in expected.items():
        assert live[table] == columns, f"columns of {table} differ from the seed (name, order or type)"


async def test_primary_keys_are_uuid_v7_defaults(conn: Connection, seed: SchemaText) -> None:
    rows = await (
        await conn.execute(
            """
            SELECT tc.table_name, kcu.column_name, col.column_default
            FROM information_schema.table_constraints tc
            JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
            JOIN information_schema.columns col
              ON col.table_schema = tc.table_schema AND col.table_name = tc.table_name
             AND col.column_name = kcu.column_name
            WHERE tc.table_schema = 'tasker' AND tc.constraint_type = 'PRIMARY KEY'
            """
        )
    ).fetchall()
    live = {row["table_name"]: (row["column_name"], row["column_default"]) for row in rows}
    for table, cols in seed.columns.items():
        pk = [name for name, _, marker in cols if marker == "PK"]
        assert live[table][0] == pk[0]
        assert "uuid_generate_v7()" in live[table][1]


async def test_foreign_keys_match_seed(conn: Connection, seed: SchemaText) -> None:
    rows = await (
        await conn.execute(
            """
            SELECT src.relname AS s, sa.attname AS sc, dst.relname AS t, da.attname AS tc
            FROM pg_constraint k
            JOIN pg_class src ON src.oid = k.conrelid JOIN pg_class dst ON dst.oid = k.confrelid
            JOIN pg_namespace n ON n.oid = src.relnamespace
            JOIN pg_attribute sa ON sa.attrelid = k.conrelid AND sa.attnum = k.conkey[1]
            JOIN pg_attribute da ON da.attrelid = k.confrelid AND da.attnum = k.confkey[1]
            WHERE n.nspname = 'tasker' AND k.contype = 'f'
            """
        )
    ).fetchall()
    live = {(r["s"], r["sc"], r["t"], r["tc"]) for r in rows}
    assert live == set(seed.foreign_keys)


async def test_uuid_generate_v7_is_version_7_and_time_ordered(conn: Connection) -> None:
    values: list[uuid.UUID] = []
    for _ in range(20):
        row = await (await conn.execute("SELECT uuid_generate_v7() AS id")).fetchone()
        assert row is not None
        values.append(row["id"])
        await asyncio.sleep(0.002)
    assert all(v.version == 7 for v in values)
    assert all(v.variant == uuid.RFC_4122 for v in values)
    assert values == sorted(values)
    millis = int.from_bytes(values[-1].bytes[:6], "big")
    assert abs(millis / 1000 - time.time()) < 60


async def _insert_task(conn: Connection) -> uuid.UUID:
    row = await (
        await conn.execute(
            """
            WITH ns AS (INSERT INTO tasker.task_namespaces (name) VALUES ('ns') RETURNING task_namespace_uuid),
                 nt AS (INSERT INTO tasker.named_tasks (task_namespace_uuid, name)
                        SELECT task_namespace_uuid, 't' FROM ns RETURNING named_task_uuid)
            INSERT INTO tasker.tasks (named_task_uuid, identity_hash, correlation_id)
            SELECT named_task_uuid, 'h', uuid_generate_v7() FROM nt RETURNING task_uuid
            """
        )
    ).fetchone()
    assert row is not None
    return row["task_uuid"]


async def test_second_most_recent_task_transition_is_rejected(conn: Connection) -> None:
    task = await _insert_task(conn)
    insert = (
        "INSERT INTO tasker.task_transitions (task_uuid, to_state, sort_key, most_recent) VALUES (%s, %s, %s, true)"
    )
    await conn.execute(insert, [task, "pending", 1])
    with pytest.raises(psycopg.errors.UniqueViolation):
        await conn.execute(insert, [task, "initializing", 2])


async def test_unknown_states_are_rejected(conn: Connection) -> None:
    task = await _insert_task(conn)
    with pytest.raises(psycopg.errors.CheckViolation):
        await conn.execute(
            "INSERT INTO tasker.task_transitions (task_uuid, to_state, sort_key) VALUES (%s, 'running', 1)", [task]
        )
    step_row = await (
        await conn.execute(
            """
            WITH s AS (INSERT INTO tasker.named_steps (name) VALUES ('s') RETURNING named_step_uuid)
            INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid) SELECT %s, named_step_uuid FROM s
            RETURNING workflow_step_uuid
            """,
            [task],
        )
    ).fetchone()
    assert step_row is not None
    step = step_row["workflow_step_uuid"]
    ok = "INSERT INTO tasker.workflow_step_transitions (workflow_step_uuid, to_state, sort_key, most_recent)"
    await conn.execute(ok + " VALUES (%s, 'pending', 1, true)", [step])
    with pytest.raises(psycopg.errors.UniqueViolation):
        await conn.execute(ok + " VALUES (%s, 'enqueued', 2, true)", [step])
    with pytest.raises(psycopg.errors.CheckViolation):
        await conn.execute(ok + " VALUES (%s, 'running', 3, false)", [step])


async def test_one_pending_dlq_entry_per_task(conn: Connection) -> None:
    task = await _insert_task(conn)
    insert = (
        "INSERT INTO tasker.tasks_dlq (task_uuid, original_state, dlq_reason, resolution_status, task_snapshot)"
        " VALUES (%s, 'steps_in_process', %s, %s, '{}')"
    )
    await conn.execute(insert, [task, "staleness_timeout", "pending"])
    await conn.execute(insert, [task, "staleness_timeout", "manually_resolved"])
    with pytest.raises(psycopg.errors.UniqueViolation):
        await conn.execute(insert, [task, "manual_dlq", "pending"])
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        await conn.execute(insert, [task, "bored", "cancelled"])


async def test_migrating_twice_is_a_no_op(empty_db_url: str) -> None:
    conn = await connect(empty_db_url)
    try:
        first = await migrate(conn)
        assert first == [m.version for m in migrations()]
        assert await migrate(conn) == []
        assert set(await applied_versions(conn)) == set(first)
    finally:
        await conn.close()


async def test_two_migrators_at_once_leave_one_correct_schema(empty_db_url: str) -> None:
    a, b = await connect(empty_db_url), await connect(empty_db_url)
    try:
        results = await asyncio.gather(migrate(a), migrate(b))
        assert sorted(results, key=len) == [[], [m.version for m in migrations()]]
        row = await (await a.execute("SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'tasker'")).fetchone()
        assert row is not None and row["n"] == 11
    finally:
        await a.close()
        await b.close()


async def test_pgmq_is_installed(conn: Connection) -> None:
    await conn.execute("SELECT pgmq.create('probe_queue')")
    await conn.execute("""SELECT pgmq.send('probe_queue', '{"a": 1}'::jsonb)""")
    row = await (await conn.execute("SELECT message FROM pgmq.read('probe_queue', 30, 1)")).fetchone()
    assert row is not None and row["message"] == {"a": 1}


async def test_schema_doc_has_the_seeds_content(conn: Connection, seed: SchemaText) -> None:
    ours = parse(await schema_document(conn))
    assert ours.columns == seed.columns
    assert sorted(ours.relationships) == sorted(seed.relationships)
    assert ours.descriptions == seed.descriptions
    assert sorted(ours.foreign_keys) == sorted(seed.foreign_keys)


async def test_committed_schema_doc_is_current(conn: Connection) -> None:
    committed = (ROOT / "docs" / "database-schema.md").read_text()
    assert await schema_document(conn) == committed, (
        "docs/database-schema.md is stale: run `tasker db schema-doc --output docs/database-schema.md`"
    )
