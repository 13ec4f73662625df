"""Forward-only migrations: ``store/sql/migrations/NNNN_slug.sql`` applied in order.

Each migration runs in its own transaction together with its ledger row, so a failed migration leaves nothing behind.
All of them run under one session-level advisory lock, so processes that start together cannot race: the second
waits, then finds everything applied. The ledger lives in schema ``tasker_meta`` so that schema ``tasker`` stays
exactly the seed's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

import psycopg

from tasker.errors import MigrationError
from tasker.store.db import Connection

# pg_advisory_lock key: the bytes "tasker" read as an integer, so it is stable and unlikely to collide.
MIGRATION_LOCK_KEY = int.from_bytes(b"tasker", "big")

LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS tasker_meta;
CREATE TABLE IF NOT EXISTS tasker_meta.schema_migrations (
    version text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass(frozen=True)
class Migration:
    version: str
    checksum: str
    apply: Callable[[Connection], Awaitable[None]]


def _sql_migration(text: str) -> Callable[[Connection], Awaitable[None]]:
    async def apply(conn: Connection) -> None:
        await conn.execute(text.encode())

    return apply


async def install_pgmq(conn: Connection) -> None:
    """PGMQ in schema ``pgmq``: the server's extension when it has one, else the SQL shipped in the ``pgmq`` wheel.

    The wheel's script uses plain ``CREATE FUNCTION``, so it cannot run twice: it is skipped when ``pgmq.meta``
    already exists (for instance on a database where PGMQ was installed by hand).
    """
    available = await (await conn.execute("SELECT 1 AS ok FROM pg_available_extensions WHERE name = 'pgmq'")).fetchone()
    if available is not None:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pgmq")
        return
    present = await (await conn.execute("SELECT to_regclass('pgmq.meta') IS NOT NULL AS present")).fetchone()
    if present is not None and present["present"]:
        return
    from pgmq.install import get_embedded_install_sql

    await conn.execute(get_embedded_install_sql().encode())


def _pgmq_checksum() -> str:
    from pgmq.install import get_embedded_sql_version

    return f"pgmq-sql-{get_embedded_sql_version()}"


def migrations() -> list[Migration]:
    """All migrations in order: the SQL files, plus the PGMQ install as version ``0002_pgmq``."""
    found: list[Migration] = []
    folder = resources.files("tasker.store").joinpath("sql", "migrations")
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            text = entry.read_text(encoding="utf-8")
            checksum = hashlib.sha256(text.encode()).hexdigest()
            found.append(Migration(entry.name.removesuffix(".sql"), checksum, _sql_migration(text)))
    found.append(Migration("0002_pgmq", _pgmq_checksum(), install_pgmq))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migrations share a version: {versions}")
    return found


async def applied_versions(conn: Connection) -> dict[str, str]:
    exists = await (
        await conn.execute("SELECT to_regclass('tasker_meta.schema_migrations') IS NOT NULL AS present")
    ).fetchone()
    if exists is None or not exists["present"]:
        return {}
    rows = await (await conn.execute("SELECT version, checksum FROM tasker_meta.schema_migrations")).fetchall()
    return {row["version"]: row["checksum"] for row in rows}


async def migrate(conn: Connection) -> list[str]:
    """Apply every pending migration; returns the versions applied now (empty when up to date)."""
    await conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_KEY])
    try:
        await conn.execute(LEDGER_DDL.encode())
        done = await applied_versions(conn)
        applied: list[str] = []
        for migration in migrations():
            if migration.version in done:
                if done[migration.version] != migration.checksum and not migration.version.endswith("_pgmq"):
                    raise MigrationError(
                        f"migration {migration.version} was changed after it was applied "
                        "(migrations are forward-only: add a new one instead)"
                    )
                continue
            try:
                async with conn.transaction():
                    await migration.apply(conn)
                    await conn.execute(
                        "INSERT INTO tasker_meta.schema_migrations (version, checksum) VALUES (%s, %s)",
                        [migration.version, migration.checksum],
                    )
            except psycopg.Error as exc:
                raise MigrationError(f"migration {migration.version} failed: {exc}") from exc
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_KEY])
