"""The dead-letter queue (``tasker.tasks_dlq``) and the staleness queries behind the sweep.

The DLQ is an investigation tracker: an entry records that a task got stuck (or exhausted its retries), with a
snapshot of the task and its steps; it never moves the task by itself. At most one entry per task is ``pending``
(a partial unique index); resolved ones stay as history. Task state changes that go with an entry (stale → error)
are made by the caller through :mod:`tasker.store.transitions`, in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb

from tasker.errors import InvalidTaskRequestError, NotFoundError
from tasker.model.states import TaskState
from tasker.store.db import Connection
from tasker.store.queries import Q

DLQ_REASONS = (
    "staleness_timeout",
    "max_retries_exceeded",
    "dependency_cycle_detected",
    "worker_unavailable",
    "manual_dlq",
)
RESOLUTION_STATUSES = ("pending", "manually_resolved", "permanently_failed", "cancelled")
HEALTH_STATUSES = ("stale", "warning", "healthy")

DlqReason = Literal[
    "staleness_timeout", "max_retries_exceeded", "dependency_cycle_detected", "worker_unavailable", "manual_dlq"
]
StalenessAction = Literal["dlq", "error", "none"]


class InvalidDlqRequestError(InvalidTaskRequestError):
    """The dead-letter queue request is invalid."""


@dataclass(frozen=True)
class StalenessThresholds:
    """Defaults in minutes (hours for the lifetime); a template's ``lifecycle`` values win over them."""

    waiting_for_dependencies_minutes: int = 60
    waiting_for_retry_minutes: int = 30
    steps_in_process_minutes: int = 30
    max_lifetime_hours: int = 24

    def params(self) -> dict[str, int]:
        return {
            "waiting_for_dependencies_minutes": self.waiting_for_dependencies_minutes,
            "waiting_for_retry_minutes": self.waiting_for_retry_minutes,
            "steps_in_process_minutes": self.steps_in_process_minutes,
            "max_lifetime_hours": self.max_lifetime_hours,
        }


@dataclass(frozen=True)
class StaleTask:
    task_uuid: UUID
    correlation_id: UUID
    namespace_name: str
    task_name: str
    task_version: str
    state: TaskState
    time_in_state_minutes: float
    task_age_minutes: float
    threshold_minutes: int
    max_lifetime_minutes: int
    staleness_action: StalenessAction

    @property
    def detection_method(self) -> str:
        """Why it is stale: too long in its state, else too old overall."""
        if self.time_in_state_minutes >= self.threshold_minutes:
            return "automatic_staleness"
        return "max_lifetime_exceeded"


@dataclass(frozen=True)
class DlqPage:
    entries: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


def _stale(row: dict[str, Any]) -> StaleTask:
    action = row["staleness_action"]
    return StaleTask(
        task_uuid=row["task_uuid"],
        correlation_id=row["correlation_id"],
        namespace_name=row["namespace_name"],
        task_name=row["task_name"],
        task_version=row["task_version"],
        state=TaskState(row["current_state"]),
        time_in_state_minutes=float(row["time_in_state_minutes"]),
        task_age_minutes=float(row["task_age_minutes"]),
        threshold_minutes=int(row["staleness_threshold_minutes"]),
        max_lifetime_minutes=int(row["max_lifetime_minutes"]),
        staleness_action=action if action in ("dlq", "error", "none") else "dlq",
    )


def _check(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidDlqRequestError(f"unknown {what} {value!r}; expected one of: {', '.join(allowed)}")
    return value


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(json.dumps(value, default=str)))


async def dlq_find_stale_tasks(
    conn: Connection, thresholds: StalenessThresholds, *, batch_size: int = 100
) -> list[StaleTask]:
    """Up to ``batch_size`` stale tasks without a pending entry, longest in their state first (reads only)."""
    rows = await (
        await conn.execute(Q["dlq_stale_candidates"], {**thresholds.params(), "batch_size": batch_size})
    ).fetchall()
    return [_stale(row) for row in rows]


async def dlq_recheck_stale_task(
    conn: Connection, task_uuid: UUID, thresholds: StalenessThresholds
) -> StaleTask | None:
    """The task's staleness now (call it holding the task lock); None when it is no longer a candidate."""
    row = await (await conn.execute(Q["dlq_stale_recheck"], {**thresholds.params(), "task_uuid": task_uuid})).fetchone()
    return _stale(row) if row else None


async def dlq_staleness_monitoring(
    conn: Connection,
    thresholds: StalenessThresholds | None = None,
    *,
    health_status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Waiting and processing tasks with threshold and health (stale / warning / healthy), least healthy first."""
    _check(health_status, HEALTH_STATUSES, "health status")
    params = {**(thresholds or StalenessThresholds()).params(), "health_status": health_status, "limit": limit}
    return await (await conn.execute(Q["dlq_staleness_monitoring"], params)).fetchall()


async def dlq_create_entry(
    conn: Connection,
    task_uuid: UUID,
    *,
    reason: DlqReason,
    original_state: str,
    metadata: dict[str, Any] | None = None,
) -> UUID | None:
    """A pending entry with a snapshot of the task and its steps; None when the task already has a pending one."""
    _check(reason, DLQ_REASONS, "DLQ reason")
    row = await (
        await conn.execute(
            Q["dlq_entry_insert"],
            {
                "task_uuid": task_uuid,
                "original_state": str(original_state),
                "dlq_reason": reason,
                "metadata": Jsonb(_json_safe(metadata or {})),
            },
        )
    ).fetchone()
    return row["dlq_entry_uuid"] if row else None


async def dlq_record_max_retries_exceeded(
    conn: Connection,
    task_uuid: UUID,
    *,
    original_state: str = TaskState.BLOCKED_BY_FAILURES,
    exhausted_step_uuids: list[UUID] | None = None,
    processor_uuid: UUID | None = None,
    metadata: dict[str, Any] | None = None,
) -> UUID | None:
    """Open a ``max_retries_exceeded`` entry for a task that blocked on steps without attempts left.

    Call it in the transaction that moves the task to ``blocked_by_failures``; returns None (writing nothing) when
    the task already has a pending entry.
    """
    details: dict[str, Any] = {
        "detection_method": "retries_exhausted",
        "exhausted_step_uuids": [str(u) for u in exhausted_step_uuids or []],
    }
    if processor_uuid is not None:
        details["processor_uuid"] = str(processor_uuid)
    return await dlq_create_entry(
        conn,
        task_uuid,
        reason="max_retries_exceeded",
        original_state=original_state,
        metadata={**details, **(metadata or {})},
    )


async def dlq_list(
    conn: Connection,
    *,
    resolution_status: str | None = None,
    dlq_reason: str | None = None,
    task_uuid: UUID | None = None,
    limit: int = 50,
    offset: int = 0,
) -> DlqPage:
    """Entries matching the filters, newest first, one page at a time, with the total count."""
    _check(resolution_status, RESOLUTION_STATUSES, "resolution status")
    _check(dlq_reason, DLQ_REASONS, "DLQ reason")
    if limit < 1 or offset < 0:
        raise InvalidDlqRequestError("limit must be at least 1 and offset at least 0")
    filters = {"resolution_status": resolution_status, "dlq_reason": dlq_reason, "task_uuid": task_uuid}
    total = await (await conn.execute(Q["dlq_entry_count"], filters)).fetchone()
    rows = await (await conn.execute(Q["dlq_entry_page"], {**filters, "limit": limit, "offset": offset})).fetchall()
    return DlqPage(entries=rows, total=int(total["total"]) if total else 0, limit=limit, offset=offset)


async def dlq_get(conn: Connection, dlq_entry_uuid: UUID) -> dict[str, Any]:
    row = await (await conn.execute(Q["dlq_entry_get"], {"dlq_entry_uuid": dlq_entry_uuid})).fetchone()
    if row is None:
        raise NotFoundError(f"DLQ entry {dlq_entry_uuid} does not exist")
    return row


async def dlq_entries_for_task(conn: Connection, task_uuid: UUID) -> list[dict[str, Any]]:
    """Every entry of the task, newest first (empty when it never entered the DLQ)."""
    return await (await conn.execute(Q["dlq_entries_of_task"], {"task_uuid": task_uuid})).fetchall()


async def dlq_update(
    conn: Connection,
    dlq_entry_uuid: UUID,
    *,
    resolution_status: str | None = None,
    resolution_notes: str | None = None,
    resolved_by: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record an investigation outcome; given fields replace stored ones, ``metadata`` is merged, and a status
    stamps ``resolution_timestamp``. Unknown statuses are refused; an unknown entry raises NotFoundError."""
    _check(resolution_status, RESOLUTION_STATUSES, "resolution status")
    if resolved_by is not None and len(resolved_by) > 255:
        raise InvalidDlqRequestError("resolved_by is longer than 255 characters")
    params = {
        "dlq_entry_uuid": dlq_entry_uuid,
        "resolution_status": resolution_status,
        "resolution_notes": resolution_notes,
        "resolved_by": resolved_by,
        "metadata": None if metadata is None else Jsonb(_json_safe(metadata)),
    }
    try:
        row = await (await conn.execute(Q["dlq_entry_update"], params)).fetchone()
    except UniqueViolation as exc:
        raise InvalidDlqRequestError(
            f"DLQ entry {dlq_entry_uuid} cannot be pending again: its task already has a pending entry"
        ) from exc
    if row is None:
        raise NotFoundError(f"DLQ entry {dlq_entry_uuid} does not exist")
    return row


async def dlq_stats(conn: Connection) -> list[dict[str, Any]]:
    """One row per reason that has entries (``v_dlq_dashboard``)."""
    return await (await conn.execute(Q["dlq_stats"])).fetchall()


async def dlq_investigation_queue(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """Pending entries, most urgent first (``v_dlq_investigation_queue``)."""
    return await (await conn.execute(Q["dlq_investigation_queue"], {"limit": limit})).fetchall()
