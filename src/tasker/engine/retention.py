"""Retention: remove finished tasks older than a cutoff, in batches, archiving each as one document or not.

Used by ``tasker db prune`` and, when ``TASKER_RETENTION_DAYS`` is set, by every orchestrator periodically (one
at a time, under an advisory lock). Each batch is one statement, so one short transaction: a database in service
never sees a long lock, and an interrupted prune leaves whole tasks, archived or not, never half of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from tasker.store.db import Connection
from tasker.store.retention import (
    PRUNED_TABLES,
    retention_count,
    retention_prune_batch,
    retention_queue_archive_count,
    retention_queue_archive_prune,
    retention_queue_names,
    retention_schedule_runs_prune,
    retention_try_lock,
    retention_unlock,
)

log = logging.getLogger("tasker.retention")


@dataclass(frozen=True)
class RetentionPolicy:
    """The periodic prune of an orchestrator: tasks finished over ``days`` ago, every ``interval_seconds``."""

    days: float
    archive: bool = True
    batch_size: int = 500
    interval_seconds: float = 3600.0


@dataclass
class PruneReport:
    """What a prune removed (or, dry, would remove): rows per table, archived documents, batches run."""

    cutoff: datetime
    archive: bool
    dry_run: bool
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PRUNED_TABLES, 0))
    archived: int = 0
    schedule_runs: int = 0
    queue_archive: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def tasks(self) -> int:
        return self.rows["tasks"]


async def prune(
    conn: Connection, *, cutoff: datetime, archive: bool = True, batch_size: int = 500, dry_run: bool = False
) -> PruneReport:
    """Prune what finished before ``cutoff``: tasks (with every row of theirs), schedule runs, queue archives.

    Batches run until one comes back short: tasks locked by someone else meanwhile are skipped, left to the next
    prune, rather than waited for.
    """
    report = PruneReport(cutoff=cutoff, archive=archive, dry_run=dry_run)
    if dry_run:
        counts = await retention_count(conn, cutoff)
        report.schedule_runs = counts.pop("schedule_runs")
        report.rows.update(counts)
        report.archived = report.tasks if archive else 0
        for queue in await retention_queue_names(conn):
            report.queue_archive[queue] = await retention_queue_archive_count(conn, queue, cutoff)
        return report
    while True:
        batch = await retention_prune_batch(conn, cutoff, batch_size, archive=archive)
        report.batches += 1
        report.archived += batch.pop("archived")
        for name, count in batch.items():
            report.rows[name] += count
        if batch["tasks"] < batch_size:
            break
    report.schedule_runs = await _drain(partial(retention_schedule_runs_prune, conn, cutoff, batch_size), batch_size)
    for queue in await retention_queue_names(conn):
        batch_of = partial(retention_queue_archive_prune, conn, queue, cutoff, batch_size)
        report.queue_archive[queue] = await _drain(batch_of, batch_size)
    return report


async def _drain(batch: Callable[[], Awaitable[int]], batch_size: int) -> int:
    """Run a batch delete until a batch comes back short; the rows deleted."""
    total = 0
    while True:
        count = await batch()
        total += count
        if count < batch_size:
            return total


async def prune_periodically(
    connection: Callable[[], AbstractAsyncContextManager[Connection]], stop: asyncio.Event, policy: RetentionPolicy
) -> None:
    """Every ``policy.interval_seconds`` until ``stop``: prune, unless another orchestrator is pruning already.
    Errors are logged, never raised, so one failed prune does not stop the loop."""
    while not stop.is_set():
        try:
            async with connection() as conn:
                await _prune_once(conn, policy)
        except Exception:
            log.exception("periodic prune failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), policy.interval_seconds)


async def _prune_once(conn: Connection, policy: RetentionPolicy) -> None:
    if not await retention_try_lock(conn):
        return
    try:
        cutoff = datetime.now(UTC) - timedelta(days=policy.days)
        report = await prune(conn, cutoff=cutoff, archive=policy.archive, batch_size=policy.batch_size)
    finally:
        await retention_unlock(conn)
    if report.tasks or report.schedule_runs or any(report.queue_archive.values()):
        log.info(
            "pruned %d finished task(s) (%s) older than %s in %d batch(es), %d schedule run(s), %d archived message(s)",
            report.tasks,
            "archived" if policy.archive else "deleted",
            cutoff.isoformat(),
            report.batches,
            report.schedule_runs,
            sum(report.queue_archive.values()),
        )
