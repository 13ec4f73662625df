"""Every SQL statement Tasker runs at run time, loaded once from ``store/sql/*.sql`` into name → text.

A statement file holds blocks headed ``-- name: noun_verb[_many]`` followed by comment lines saying why, then the
statement. Store functions ask for statements by name only (``Q["task_insert"]``), so one grep finds both.

The comment lines stay in the files: what is sent is the statement alone, headed by its name as a comment
(``/* task_create */ WITH ...``, which is what ``pg_stat_activity`` and the server log show). psycopg keeps the
parsed form of statements up to 4 KB only, and the longest hot statement (task creation) was longer with its
comments, so it was parsed again on every call.
"""

from __future__ import annotations

import re
from importlib import resources

from psycopg import sql

_HEADER = re.compile(r"^--\s*name:\s*([a-z][a-z0-9_]*)\s*$", re.MULTILINE)


class _Queries(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"no SQL statement named {key!r} in tasker/store/sql/*.sql")


def parse(text: str, source: str) -> dict[str, str]:
    """Split one statement file into name → statement text; unnamed text or a repeated name is an error."""
    parts = _HEADER.split(text)
    preamble = _strip_comments(parts[0])
    if preamble:
        raise ValueError(f"{source}: SQL before the first '-- name:' header")
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = body.strip()
        if not _strip_comments(statement):
            raise ValueError(f"{source}: statement {name!r} is empty")
        if name in found:
            raise ValueError(f"{source}: statement {name!r} is defined twice")
        found[name] = f"/* {name} */\n{_strip_comments(statement)}"
    return found


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.strip().startswith("--"))


def load() -> _Queries:
    queries = _Queries()
    sql_dir = resources.files("tasker.store").joinpath("sql")
    for entry in sorted(sql_dir.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, statement in parse(entry.read_text(encoding="utf-8"), entry.name).items():
            if name in queries:
                raise ValueError(f"{entry.name}: statement {name!r} is already defined in another file")
            queries[name] = statement
    return queries


Q = load()

_ON_TABLE: dict[tuple[str, str, str], bytes] = {}


def on_table(name: str, placeholder: str, table: str) -> bytes:
    """Statement ``name`` with ``{placeholder}`` filled in by the quoted name of ``table`` (in schema ``pgmq``, as
    a queue's table), rendered once per process: a statement written against a queue's own table keeps a plan on
    the server (pgmq's functions plan their dynamic SQL on every call), and its text needs no rendering per call."""
    key = (name, placeholder, table)
    statement = _ON_TABLE.get(key)
    if statement is None:
        composed = sql.SQL(Q[name]).format(**{placeholder: sql.Identifier(table)})
        statement = _ON_TABLE[key] = composed.as_bytes(None)
    return statement
