"""Test databases: one migrated template per server, cloned into a fresh database for every test.

The server is the embedded PostgreSQL 18 (data in ``.cache/test-postgres``) unless ``TASKER_TEST_DATABASE_URL``
names another one, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres`` for the machine's PostgreSQL 15; there we
create and drop our own databases and never touch the one named in the URL.

The template is migrated once (under an advisory lock, so parallel pytest-xdist workers build it once) and named after
a digest of the migrations, so a changed migration builds a new template instead of reusing a stale one.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tasker.store.db import Connection, connect
from tasker.store.embedded import start_embedded
from tasker.store.migrate import migrate, migrations

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_LOCK_KEY = 0x7A5C7E57


def _admin_url() -> str:
    given = os.environ.get("TASKER_TEST_DATABASE_URL")
    if given:
        return given
    return start_embedded(ROOT / ".cache" / "test-postgres", database="postgres")


def _template_name() -> str:
    digest = hashlib.sha256("".join(m.version + m.checksum for m in migrations()).encode()).hexdigest()[:12]
    return f"tasker_test_tpl_{digest}"


def url_for(admin_url: str, dbname: str) -> str:
    return make_conninfo(admin_url, dbname=dbname)


def _ensure_template(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_advisory_lock(%s)", [TEMPLATE_LOCK_KEY])
        try:
            row = admin.execute("SELECT datistemplate FROM pg_database WHERE datname = %s", [name]).fetchone()
            if row is not None and row[0]:
                return
            if row is not None:  # a half-built template from an interrupted run
                admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

            async def build() -> None:
                conn = await connect(url_for(admin_url, name))
                try:
                    await migrate(conn)
                finally:
                    await conn.close()

            asyncio.run(build())
            admin.execute(sql.SQL("ALTER DATABASE {} WITH is_template true").format(sql.Identifier(name)))
        finally:
            admin.execute("SELECT pg_advisory_unlock(%s)", [TEMPLATE_LOCK_KEY])


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _admin_url()


@pytest.fixture(scope="session")
def template_db(admin_url: str) -> str:
    name = _template_name()
    _ensure_template(admin_url, name)
    return name


def _create_database(admin_url: str, template: str | None) -> str:
    name = f"tasker_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        admin.execute(query)
    return name


def _drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def db_url(admin_url: str, template_db: str) -> Iterator[str]:
    """A freshly migrated database of this test's own."""
    name = _create_database(admin_url, template_db)
    yield url_for(admin_url, name)
    _drop_database(admin_url, name)


@pytest.fixture
def empty_db_url(admin_url: str) -> Iterator[str]:
    """An empty database (no migrations), for migration tests."""
    name = _create_database(admin_url, None)
    yield url_for(admin_url, name)
    _drop_database(admin_url, name)


@pytest.fixture
async def conn(db_url: str) -> AsyncIterator[Connection]:
    connection = await connect(db_url)
    yield connection
    await connection.close()
