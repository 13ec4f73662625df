"""Schedules as values: the cron expression and time zone checks, and which tick fires when (no I/O).

A cron expression has the five classic fields (minute hour day month weekday) or six, the sixth and last being
seconds (croniter's convention), or is one of the ``@hourly``-style aliases. Ticks are computed in the schedule's
time zone, so ``0 9 * * *`` in ``Europe/Paris`` fires at 09:00 Paris time on both sides of a DST change, and stored
in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field

from tasker.errors import InvalidScheduleError
from tasker.model.requests import TaskRequest

CRON_MAX_LENGTH = 256
SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


def check_cron(expression: str) -> str:
    """The expression, stripped, when croniter can evaluate it; otherwise InvalidScheduleError naming it."""
    text = " ".join(expression.split())
    fields = text.split(" ")
    aliased = text.startswith("@") and len(fields) == 1
    if not text or len(text) > CRON_MAX_LENGTH or not (aliased or len(fields) in (5, 6)):
        raise InvalidScheduleError(
            f"cron expression {expression!r}: expected 5 fields (minute hour day month weekday), 6 with seconds"
            " last, or an alias such as @hourly"
        )
    if not croniter.is_valid(text):
        raise InvalidScheduleError(f"cron expression {expression!r} is not valid")
    return text


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone of that name; InvalidScheduleError when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidScheduleError(
            f"time zone {name!r} is unknown: use an IANA name such as UTC or Europe/Paris"
        ) from None


def next_tick(expression: str, timezone: str, after: datetime) -> datetime:
    """The first tick strictly after ``after`` (aware), in UTC."""
    start = after.astimezone(check_timezone(timezone))
    found: datetime = croniter(expression, start).get_next(datetime)
    return found.astimezone(UTC)


def _latest_tick(expression: str, timezone: str, before: datetime) -> datetime:
    """The last tick strictly before ``before``, in UTC."""
    start = before.astimezone(check_timezone(timezone))
    found: datetime = croniter(expression, start).get_prev(datetime)
    return found.astimezone(UTC)


@dataclass(frozen=True)
class Tick:
    """What a due schedule does now: create one task for ``scheduled_for`` and move on to ``next_run_at``.

    ``missed_since`` is set when ticks were missed (no orchestrator ran when they were due): they are not replayed
    one by one, the latest of them fires once and the run records since when it stands for.
    """

    scheduled_for: datetime
    next_run_at: datetime
    missed_since: datetime | None


def plan_tick(expression: str, timezone: str, next_run_at: datetime, now: datetime) -> Tick:
    """The tick a schedule due at ``next_run_at`` fires at ``now`` (both aware, ``next_run_at <= now``)."""
    following = next_tick(expression, timezone, now)
    latest = max(_latest_tick(expression, timezone, following), next_run_at)
    missed = next_run_at if latest > next_run_at else None
    return Tick(scheduled_for=latest, next_run_at=following, missed_since=missed)


class ScheduleSpec(BaseModel):
    """A schedule as a client gives it: a unique name, when (cron, time zone) and the task request it makes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=SCHEDULE_NAME_PATTERN)
    cron: str = Field(min_length=1, max_length=CRON_MAX_LENGTH)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    namespace: str = Field(min_length=1, max_length=64)
    task_name: str = Field(min_length=1, max_length=64)
    version: str = Field(default="1.0.0", min_length=1, max_length=16)
    context: dict[str, Any] = Field(default_factory=dict)
    initiator: str | None = Field(default=None, max_length=128)
    source_system: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=500)
    tags: list[str] = Field(default_factory=list)
    priority: int = Field(default=0, ge=-100, le=100)
    enabled: bool = True

    def checked(self) -> ScheduleSpec:
        """This spec with its cron expression normalised, after checking the expression and the time zone."""
        check_timezone(self.timezone)
        return self.model_copy(update={"cron": check_cron(self.cron)})

    def task_request(self, idempotency_key: str | None = None, **extra: Any) -> TaskRequest:
        """The request each tick makes (validated as ``POST /v1/tasks`` validates it)."""
        return TaskRequest(
            namespace=self.namespace,
            name=self.task_name,
            version=self.version,
            context=self.context,
            initiator=self.initiator,
            source_system=self.source_system,
            reason=self.reason,
            tags=self.tags,
            priority=self.priority,
            idempotency_key=idempotency_key,
            **extra,
        )


def tick_idempotency_key(schedule_uuid: Any, scheduled_for: datetime) -> str:
    """The idempotency key of a tick's task: a fresh identity per tick (whatever the template's identity strategy,
    so a ``strict`` template's unchanged context is not refused as a duplicate), and the same one for the same
    tick, so the tasks table's unique identity refuses a second task for it too."""
    return f"schedule:{schedule_uuid}:{scheduled_for.astimezone(UTC).isoformat()}"
