"""Retention: count and remove finished tasks (and old queue archives, old schedule runs) in batches.

Every function here is one statement, so one transaction on the autocommit connections: a batch is archived and
deleted together or not at all, and no lock outlives its batch.
"""

from __future__ import annotations

from datetime import datetime

from tasker.store.db import Connection
from tasker.store.queries import Q, on_table

# the tables a prune removes rows from, in the order the counts are reported
PRUNED_TABLES = (
    "tasks",
    "workflow_steps",
    "workflow_step_edges",
    "task_transitions",
    "workflow_step_transitions",
    "workflow_step_result_audit",
    "tasks_dlq",
    "domain_events",  # tasker_ext: the task's durable domain events (migration 0013)
)


async def retention_count(conn: Connection, cutoff: datetime) -> dict[str, int]:
    """Rows a prune with this cutoff would remove, per table (tasker tables and ``schedule_runs``)."""
    row = await (await conn.execute(Q["retention_count"], {"cutoff": cutoff})).fetchone()
    assert row is not None
    return {name: int(value) for name, value in row.items()}


async def retention_prune_batch(
    conn: Connection, cutoff: datetime, batch_size: int, *, archive: bool
) -> dict[str, int]:
    """Archive (when asked) and delete up to ``batch_size`` finished tasks with all their rows; the counts."""
    params = {"cutoff": cutoff, "batch_size": batch_size, "archive": archive}
    row = await (await conn.execute(Q["retention_prune_batch"], params)).fetchone()
    assert row is not None
    return {name: int(value) for name, value in row.items()}


async def retention_schedule_runs_prune(conn: Connection, cutoff: datetime, batch_size: int) -> int:
    params = {"cutoff": cutoff, "batch_size": batch_size}
    row = await (await conn.execute(Q["retention_schedule_runs_prune"], params)).fetchone()
    return int(row["deleted"]) if row else 0


async def retention_queue_names(conn: Connection) -> list[str]:
    """The PGMQ queues (none when PGMQ's catalog is missing, as on a database migrated elsewhere)."""
    present = await (await conn.execute("SELECT to_regclass('pgmq.meta') IS NOT NULL AS present")).fetchone()
    if present is None or not present["present"]:
        return []
    return [row["queue_name"] for row in await (await conn.execute(Q["retention_queue_names"])).fetchall()]


def _for_queue(name: str, queue: str) -> bytes:
    return on_table(name, "archive_table", f"a_{queue}")


async def retention_queue_archive_count(conn: Connection, queue: str, cutoff: datetime) -> int:
    row = await (await conn.execute(_for_queue("retention_queue_archive_count", queue), {"cutoff": cutoff})).fetchone()
    return int(row["old"]) if row else 0


async def retention_queue_archive_prune(conn: Connection, queue: str, cutoff: datetime, batch_size: int) -> int:
    params = {"cutoff": cutoff, "batch_size": batch_size}
    row = await (await conn.execute(_for_queue("retention_queue_archive_prune", queue), params)).fetchone()
    return int(row["deleted"]) if row else 0


async def retention_try_lock(conn: Connection) -> bool:
    row = await (await conn.execute(Q["retention_try_lock"])).fetchone()
    return bool(row and row["locked"])


async def retention_unlock(conn: Connection) -> None:
    await conn.execute(Q["retention_unlock"])
