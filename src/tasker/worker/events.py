"""Domain events in the worker: which events a batch of results publishes, and the in-process bus for ``fast``
delivery.

Delivery modes (tasker-core's): ``durable`` events are rows of ``tasker_ext.domain_events``, inserted in the
transaction that stores the result (``store.events.domain_event_store_with``), read by ``GET /v1/events``, ``tasker
events list`` and :func:`tasker.messaging.events.subscribe`. ``fast`` events go only to the subscribers of this
process's :class:`EventBus`, after the result's commit; they are not stored, so a crash between the commit and the
call loses them (at most once). ``broadcast`` is both.

Publishing never fails a step: a matching event whose payload breaks its declared JSON Schema is left out with a
warning, and a subscriber that raises is logged and skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from tasker.model.events import DomainEvent, EventSource, Patterns, events_for, outcome_of
from tasker.model.ids import uuid7
from tasker.model.template import TaskTemplate

log = logging.getLogger("tasker.worker.events")

Callback = Callable[[DomainEvent], Any]  # a plain function, or one returning an awaitable (run as a task)


@dataclass(frozen=True)
class _Subscription:
    patterns: Patterns
    callback: Callback


class EventBus:
    """In-process subscribers of ``fast`` and ``broadcast`` events, by tasker-core's ``subscribes_to`` globs.

    Callbacks run on the worker's event loop right after the result commits: a plain function must be quick (it
    holds up the worker meanwhile); a coroutine function is started as a task and not awaited.
    """

    def __init__(self) -> None:
        self._subscriptions: list[_Subscription] = []
        self._running: set[asyncio.Future[Any]] = set()

    def subscribe(self, patterns: Iterable[str], callback: Callback) -> Callable[[], None]:
        """Call ``callback(event)`` for every fast event whose name matches one of ``patterns`` (none: all);
        returns the function that unsubscribes."""
        subscription = _Subscription(Patterns(patterns), callback)
        self._subscriptions.append(subscription)
        return lambda: self._subscriptions.remove(subscription) if subscription in self._subscriptions else None

    def publish(self, events: Iterable[DomainEvent]) -> None:
        for event in events:
            if not event.fast:
                continue
            for subscription in list(self._subscriptions):
                if subscription.patterns.matches(event.name):
                    self._call(subscription.callback, event)

    def _call(self, callback: Callback, event: DomainEvent) -> None:
        try:
            outcome = callback(event)
        except Exception:
            log.exception("a subscriber of %s failed", event.name, extra={"step_uuid": event.step_uuid})
            return
        if inspect.isawaitable(outcome):
            running = asyncio.ensure_future(outcome)
            self._running.add(running)
            running.add_done_callback(self._finished)

    def _finished(self, running: asyncio.Future[Any]) -> None:
        self._running.discard(running)
        if not running.cancelled() and running.exception() is not None:
            log.error("a subscriber failed", exc_info=running.exception())


default_bus = EventBus()


@dataclass(frozen=True)
class StoredResult:
    """One result about to be stored, with what deciding its events needs: the task's template (None when the
    worker never loaded it: a lost attempt reported for another worker publishes nothing), the claim's row (from
    ``step_claim_many``), the attempt and the results JSON being stored."""

    template: TaskTemplate | None
    row: Mapping[str, Any]
    attempts: int
    results: dict[str, Any]


def events_of(results: Sequence[StoredResult], *, worker_id: str) -> list[DomainEvent]:
    """The events these results publish if they are stored (conditions matched, envelopes built, schemas checked)."""
    fired_at = datetime.now(UTC).isoformat()
    events: list[DomainEvent] = []
    for result in results:
        try:
            events += _events_of(result, worker_id, fired_at)
        except Exception:  # publishing never fails the step: its result is stored without the events
            log.exception("step %s: its domain events could not be built", result.row.get("workflow_step_uuid"))
    return events


def _events_of(result: StoredResult, worker_id: str, fired_at: str) -> list[DomainEvent]:
    if result.template is None:
        return []
    row = result.row
    declarations = result.template.step(row["template_step_name"]).publishes_events
    if not declarations:
        return []
    outcome = outcome_of(
        success=bool(result.results.get("success")),
        error_retryable=bool((result.results.get("metadata") or {}).get("retryable")),
        step_retryable=row.get("retryable") is not False,
        attempts=result.attempts,
        max_attempts=int(row["max_attempts"]),
    )
    source = EventSource(
        task_uuid=row["task_uuid"],
        step_uuid=row["workflow_step_uuid"],
        step_name=row["name"],
        namespace=row["namespace_name"],
        task_name=row["task_name"],
        task_version=row["task_version"],
        correlation_id=row["correlation_id"],
        worker_id=worker_id,
        attempt=result.attempts,
    )
    made, skipped = events_for(declarations, outcome, source, result.results, fired_at=fired_at, new_uuid=uuid7)
    for left_out in skipped:
        log.warning(
            "step %s: event %s not published: %s",
            source.step_uuid,
            left_out.name,
            left_out.reason,
            extra={"step_uuid": source.step_uuid, "task_uuid": source.task_uuid},
        )
    return made


def stored_events(events: Iterable[DomainEvent], stored: Collection[UUID]) -> list[DomainEvent]:
    """The events of the results that were stored (the others' compare-and-swap lost: they publish nothing)."""
    return [e for e in events if e.step_uuid in stored]
