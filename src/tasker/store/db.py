"""Connections: every connection is autocommit with UTC session time, so transactions are always explicit
(``async with conn.transaction()``) and owned by the caller, and ``timestamp`` columns hold UTC."""

from __future__ import annotations

import select
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, TypeVar
from uuid import UUID

import psycopg
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import AdaptersMap
from psycopg.pq import ConnStatus, Format, TransactionStatus
from psycopg.rows import dict_row
from psycopg.types.array import ListBinaryDumper
from psycopg_pool import AsyncConnectionPool

from tasker.config import check_database_url, redact_secrets
from tasker.errors import ConfigurationError, DatabaseUnavailableError

Connection = psycopg.AsyncConnection[dict[str, Any]]

T = TypeVar("T")
# A statement already sent whose answer is read by awaiting this. In pipeline mode (``conn.pipeline()``) several
# statements go out before the first answer is awaited, so dependent-free statements cost one round trip together.
Pending: TypeAlias = Callable[[], Awaitable[T]]

# jit=off: every statement here is short OLTP work, but a generic plan's row estimates can put its cost past
# jit_above_cost, and compiling it then takes hundreds of milliseconds per execution (seen on the readiness
# function: 2 ms of work behind 260 ms of JIT). Generic plans: see the statements' comments (planning a statement
# this size costs more than running it).
CONNECT_OPTIONS = "-c TimeZone=UTC -c plan_cache_mode=force_generic_plan -c jit=off"
# The engine's hot-path pools: only nested loops over index lookups (see create_pool).
KEY_LOOKUP_OPTIONS = " -c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off -c enable_bitmapscan=off"

# Python lists go out as binary arrays: the engine sends its batches as arrays (one per column of a batch of
# changes), and the text form quotes and escapes every element with a regular expression (a batch of 64 result
# changes: 4.3 ms to dump in text, 1.6 ms in binary).
ADAPTERS = AdaptersMap(psycopg.adapters)
ADAPTERS.register_dumper(list, ListBinaryDumper)


class TypedArray(list[Any]):
    """A list whose PostgreSQL array type is known in advance (one subclass per element type). psycopg then dumps
    it with the dumper registered for its class, instead of scanning the list for its element type and building a
    dumper for every list of every statement (the engine's batches are columns of arrays: a result store sends two
    dozen). Elements may be None."""

    element_type = ""
    # the binary form of one element, length prefix included (None: dump through psycopg's element dumper)
    encode: Callable[[Any], bytes] | None = None


def _sized(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


class UuidArray(TypedArray):
    element_type = "uuid"
    encode = staticmethod(lambda value: _sized((value if isinstance(value, UUID) else UUID(str(value))).bytes))


class TextArray(TypedArray):
    element_type = "text"
    encode = staticmethod(lambda value: _sized(str(value).encode()))


class BoolArray(TypedArray):
    element_type = "bool"
    encode = staticmethod(lambda value: b"\x00\x00\x00\x01\x01" if value else b"\x00\x00\x00\x01\x00")


class Int4Array(TypedArray):
    element_type = "int4"
    encode = staticmethod(lambda value: struct.pack("!ii", 4, value))


class Int8Array(TypedArray):
    element_type = "int8"
    encode = staticmethod(lambda value: struct.pack("!iq", 8, value))


class JsonbArray(TypedArray):
    """Elements are ``psycopg.types.json.Jsonb`` (or None), dumped by psycopg's jsonb dumper."""

    element_type = "jsonb"


_NULL_ELEMENT = struct.pack("!i", -1)


def _typed_array_dumper(array: type[TypedArray]) -> type[ListBinaryDumper]:
    info = psycopg.adapters.types[array.element_type]
    element_dumper = psycopg.adapters.get_dumper_by_oid(info.oid, Format.BINARY)
    encode = array.encode

    class TypedArrayDumper(ListBinaryDumper):
        oid = info.array_oid  # known: psycopg does not look at the elements to choose a dumper

        def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
            super().__init__(cls, context)
            self.sub_dumper = element_dumper(object, context)

        def dump(self, obj: list[Any]) -> Buffer | None:
            if encode is None or not obj:
                return super().dump(obj)
            elements = [_NULL_ELEMENT if value is None else encode(value) for value in obj]
            head = struct.pack("!iiiii", 1, int(any(value is None for value in obj)), info.oid, len(obj), 1)
            return head + b"".join(elements)

    return TypedArrayDumper


for _array in (UuidArray, TextArray, BoolArray, Int4Array, Int8Array, JsonbArray):
    ADAPTERS.register_dumper(_array, _typed_array_dumper(_array))


def _unavailable(exc: psycopg.Error, url: str) -> DatabaseUnavailableError:
    """The error to raise instead of ``exc``: libpq may quote the URL, so its password is taken out of the text.

    Raise it ``from None``: a chained cause would print psycopg's own message, password included.
    """
    return DatabaseUnavailableError(f"cannot connect to PostgreSQL: {redact_secrets(str(exc).strip(), url)}")


async def connect(url: str, *, application_name: str = "tasker") -> Connection:
    """One autocommit connection returning rows as dicts."""
    try:
        return await psycopg.AsyncConnection.connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            options=CONNECT_OPTIONS,
            application_name=application_name,
            context=ADAPTERS,
        )
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:  # unreachable, or a malformed URL
        raise _unavailable(exc, url) from None


def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    durable_commits: bool = True,
    key_lookups: bool = False,
    application_name: str = "tasker",
) -> AsyncConnectionPool[Connection]:
    """A pool of connections configured like :func:`connect`; open it with ``await pool.open()``.

    ``durable_commits=False`` is for the engine's own hops (claims, stored results, applied results): their commits
    return without waiting for the WAL flush. A database crash can then roll back the last fraction of a second of
    such progress, which is consistent (a prefix of history) and redone by redelivery, since delivery is at least
    once anyway. Anything acknowledged to a caller (task creation, operator actions) keeps durable commits.
    ``application_name`` shows in ``pg_stat_activity`` which kind of process a connection belongs to.

    ``key_lookups=True`` is for the engine's hot path (workers, orchestrators), whose statements all find a few
    rows by key: sequential scans, hash and merge joins and bitmap scans are priced out (``KEY_LOOKUP_OPTIONS``),
    so the planner can only pick nested loops over index lookups. A generic plan made while the tables were tiny
    (a fresh database, or statistics that autovacuum never refreshed) otherwise keeps scanning whole tables or
    indexes once they have grown: with autovacuum off, a worker's readiness statement went from 1 ms to over 300
    ms within a minute of a fresh start with sequential scans allowed; with only those priced out, the handler
    context's dependency results still merge-joined every step of every task, and the latency of a 4-step chain
    doubled over 800 tasks (``bench/runtime.py --latency-tasks 800``: p50 65 ms, and 25-36 ms with all four
    priced out).

    Every connection is checked as it leaves the pool (:func:`check_pooled`): after a database restart or a killed
    backend the idle connections are all dead, and without the check each would fail one caller's statement (a
    worker's stored result, an orchestrator's batch) before the pool noticed.
    """
    try:
        check_database_url(url)  # a malformed URL fails here, not in the pool's background connection attempts
    except ValueError as exc:
        raise ConfigurationError(f"database URL: {exc}") from None
    options = CONNECT_OPTIONS if durable_commits else f"{CONNECT_OPTIONS} -c synchronous_commit=off"
    if key_lookups:
        options += KEY_LOOKUP_OPTIONS
    return AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        open=False,
        check=check_pooled,
        connection_class=psycopg.AsyncConnection[dict[str, Any]],
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "options": options,
            "application_name": application_name,
            "context": ADAPTERS,
        },
    )


async def check_pooled(conn: Connection) -> None:
    """Raise if a pooled connection is dead, at the cost of a round trip only when it looks suspicious.

    An idle connection's socket has nothing to read, unless the server spoke while it sat in the pool: a terminated
    backend or a server shutting down sends its farewell and closes the socket. So the socket is polled (no round
    trip, which matters on the hot path: a checkout per claim batch and per stored batch); only when it is readable,
    or libpq already knows the connection is bad, does psycopg's full check (an empty query) decide. A server that
    vanished without closing its sockets (a lost host) passes; the caller's statement fails then, and callers retry.
    """
    pgconn = conn.pgconn
    if pgconn.status != ConnStatus.OK or _readable(pgconn.socket):
        await AsyncConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fd], [], [], 0)  # Windows: no poll()
    return bool(readable)


@asynccontextmanager
async def connection(url: str) -> AsyncIterator[Connection]:
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def pipelined_transaction(conn: Connection) -> AsyncIterator[psycopg.AsyncPipeline]:
    """A transaction in pipeline mode whose BEGIN and COMMIT travel with its statements, with one Sync at the end.

    psycopg's ``conn.transaction()`` inside ``conn.pipeline()`` syncs after BEGIN (to learn the transaction
    status), again before COMMIT, and the pipeline syncs once more when it closes: four round trips for a
    transaction whose statements need none of each other's answers (seen with strace). Here a transaction read
    after it ends costs one, plus one per answer read inside it. An exception raised in the block rolls the
    transaction back; a statement that fails on the server aborts the rest of the pipeline, so the COMMIT behind
    it is skipped and the failed transaction is rolled back once the pipeline closes. Either way the error
    propagates. Inside a transaction already open this is a savepoint, as ``conn.transaction()`` is (a nested
    ``conn.transaction()`` in the block is one too: the connection is not idle once BEGIN is queued)."""
    if conn.info.transaction_status is not TransactionStatus.IDLE:
        async with conn.pipeline() as pipeline, conn.transaction():
            yield pipeline
        return
    try:
        async with conn.pipeline() as pipeline:
            await conn.execute(b"BEGIN")
            try:
                yield pipeline
            except BaseException:
                await conn.execute(b"ROLLBACK")
                raise
            await conn.execute(b"COMMIT")
    finally:
        if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            await conn.execute(b"ROLLBACK")
