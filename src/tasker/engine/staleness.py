"""The staleness sweep: tasks stuck waiting or processing too long get a DLQ entry and move to ``error``.

Candidates are tasks in ``waiting_for_dependencies``, ``waiting_for_retry`` or ``steps_in_process`` for at least
their threshold (the template's ``lifecycle`` minutes, else the configured defaults), or older than their maximum
lifetime, without a pending DLQ entry. Each is handled in its own transaction: lock the task, re-check that it is
still in the same state and still stale, then act as its template's ``lifecycle.staleness_action`` says:

* ``dlq`` (default): a ``staleness_timeout`` entry (snapshot + metadata) and the transition to ``error``;
* ``error``: the transition to ``error`` only;
* ``none``: nothing (such tasks are not even selected).

The transition goes through the one guarded transition API (``TaskEvent.STALE``), so a task that moved meanwhile
is reported, never overwritten. A dry run writes nothing and reports what it would do. Any number of orchestrators
may sweep at once: the row lock and the re-check make each task's outcome happen once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Literal
from uuid import UUID

from tasker.errors import LostRaceError
from tasker.model.machines import TaskEvent
from tasker.model.states import TaskState
from tasker.store.db import Connection
from tasker.store.dlq import (
    StalenessThresholds,
    StaleTask,
    dlq_create_entry,
    dlq_find_stale_tasks,
    dlq_recheck_stale_task,
)
from tasker.store.tasks import task_lock
from tasker.store.transitions import TaskChange, task_transition

log = logging.getLogger("tasker.staleness")

Action = Literal[
    "would_move_to_dlq_and_error",
    "would_transition_to_error",
    "moved_to_dlq_and_error",
    "transitioned_to_error",
    "skipped_no_longer_stale",
    "skipped_action_none",
    "lost_race",
]


@dataclass(frozen=True)
class StalenessDefaults:
    """Configured thresholds (a template's ``lifecycle`` minutes win) and how often the orchestrator sweeps."""

    waiting_for_dependencies_minutes: int = 60
    waiting_for_retry_minutes: int = 30
    steps_in_process_minutes: int = 30
    task_max_lifetime_hours: int = 24
    interval_seconds: float = 300.0

    def thresholds(self) -> StalenessThresholds:
        return StalenessThresholds(
            waiting_for_dependencies_minutes=self.waiting_for_dependencies_minutes,
            waiting_for_retry_minutes=self.waiting_for_retry_minutes,
            steps_in_process_minutes=self.steps_in_process_minutes,
            max_lifetime_hours=self.task_max_lifetime_hours,
        )


@dataclass(frozen=True)
class SweepOutcome:
    task_uuid: UUID
    namespace_name: str
    task_name: str
    state: TaskState
    time_in_state_minutes: float
    threshold_minutes: int
    detection_method: str
    action: Action
    dlq_entry_uuid: UUID | None = None


@dataclass
class SweepReport:
    dry_run: bool
    found: int = 0
    outcomes: list[SweepOutcome] = field(default_factory=list)

    def count(self, *actions: Action) -> int:
        return sum(1 for o in self.outcomes if o.action in actions)

    @property
    def moved_to_dlq(self) -> int:
        return self.count("moved_to_dlq_and_error")

    @property
    def transitioned_to_error(self) -> int:
        return self.count("moved_to_dlq_and_error", "transitioned_to_error")

    @property
    def skipped(self) -> int:
        return self.count("skipped_no_longer_stale", "skipped_action_none", "lost_race")


def _outcome(task: StaleTask, action: Action, entry: UUID | None = None) -> SweepOutcome:
    return SweepOutcome(
        task_uuid=task.task_uuid,
        namespace_name=task.namespace_name,
        task_name=task.task_name,
        state=task.state,
        time_in_state_minutes=task.time_in_state_minutes,
        threshold_minutes=task.threshold_minutes,
        detection_method=task.detection_method,
        action=action,
        dlq_entry_uuid=entry,
    )


async def sweep_stale_tasks(
    conn: Connection,
    *,
    defaults: StalenessDefaults,
    dry_run: bool,
    batch_size: int,
    processor_uuid: UUID | None,
) -> SweepReport:
    """Find up to ``batch_size`` stale tasks and handle each in its own transaction (``conn`` is autocommit)."""
    thresholds = defaults.thresholds()
    report = SweepReport(dry_run=dry_run)
    candidates = await dlq_find_stale_tasks(conn, thresholds, batch_size=batch_size)
    report.found = len(candidates)
    for candidate in candidates:
        if candidate.staleness_action == "none":
            report.outcomes.append(_outcome(candidate, "skipped_action_none"))
        elif dry_run:
            action: Action = (
                "would_move_to_dlq_and_error" if candidate.staleness_action == "dlq" else "would_transition_to_error"
            )
            report.outcomes.append(_outcome(candidate, action))
        else:
            report.outcomes.append(await _handle(conn, candidate, thresholds, processor_uuid))
    if report.outcomes:
        log.info(
            "staleness sweep%s: %d stale, %d moved to the DLQ, %d to error, %d skipped",
            " (dry run)" if dry_run else "",
            report.found,
            report.moved_to_dlq,
            report.transitioned_to_error,
            report.skipped,
        )
    return report


async def _handle(
    conn: Connection, candidate: StaleTask, thresholds: StalenessThresholds, processor_uuid: UUID | None
) -> SweepOutcome:
    try:
        async with conn.transaction():
            locked = await task_lock(conn, candidate.task_uuid)
            if locked["state"] != candidate.state:
                return _outcome(candidate, "skipped_no_longer_stale")
            task = await dlq_recheck_stale_task(conn, candidate.task_uuid, thresholds)
            if task is None or task.state != candidate.state:
                return _outcome(candidate, "skipped_no_longer_stale")
            details = {
                "detection_method": task.detection_method,
                "time_in_state_minutes": task.time_in_state_minutes,
                "threshold_minutes": task.threshold_minutes,
                "task_age_minutes": task.task_age_minutes,
                "max_lifetime_minutes": task.max_lifetime_minutes,
            }
            entry: UUID | None = None
            if task.staleness_action == "dlq":
                entry = await dlq_create_entry(
                    conn,
                    task.task_uuid,
                    reason="staleness_timeout",
                    original_state=task.state,
                    metadata={**details, "processor_uuid": processor_uuid},
                )
                if entry is None:  # a pending entry appeared after the re-check: leave the task to it
                    return _outcome(task, "skipped_no_longer_stale")
            elif task.staleness_action != "error":
                return _outcome(task, "skipped_action_none")
            await task_transition(
                conn,
                TaskChange(
                    task.task_uuid,
                    task.state,
                    [TaskEvent.STALE],
                    {
                        **details,
                        "reason": "staleness_timeout",
                        "dlq_entry_uuid": entry,
                        "processor_uuid": processor_uuid,
                        "correlation_id": task.correlation_id,
                    },
                ),
            )
            return _outcome(task, "moved_to_dlq_and_error" if entry else "transitioned_to_error", entry)
    except LostRaceError:
        return _outcome(candidate, "lost_race")


async def sweep_periodically(
    connection: Callable[[], AbstractAsyncContextManager[Connection]],
    stop: asyncio.Event,
    *,
    defaults: StalenessDefaults,
    dry_run: bool = False,
    batch_size: int = 100,
    processor_uuid: UUID | None = None,
) -> None:
    """Sweep every ``defaults.interval_seconds`` until ``stop`` is set; a full batch that made progress is followed
    by another sweep at once. ``connection`` gives a connection for one sweep (e.g. ``pool.connection``). Errors
    are logged, never raised, so one bad sweep does not stop the loop."""
    while not stop.is_set():
        full = False
        try:
            async with connection() as conn:
                report = await sweep_stale_tasks(
                    conn, defaults=defaults, dry_run=dry_run, batch_size=batch_size, processor_uuid=processor_uuid
                )
            full = not dry_run and report.found >= batch_size and report.transitioned_to_error > 0
        except Exception:
            log.exception("staleness sweep failed")
        if full:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), defaults.interval_seconds)
