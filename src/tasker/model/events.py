"""Domain events, pure: which of a step's declared events an outcome publishes, the envelope they carry, and the
glob patterns subscribers name them by.

A step declares ``publishes_events`` in its template (tasker-core's format, :class:`EventDeclaration`). When its
result is stored, each declaration whose ``condition`` matches the outcome becomes one event. The outcome is one of
three: ``success``; ``retryable_failure`` when orchestration will run the step again (the error is retryable, the
step is, and attempts are left); ``permanent_failure`` otherwise. ``failure`` matches both failures, ``always``
matches everything.

Patterns are tasker-core's ``subscribes_to`` globs: ``*`` matches any run of characters (dots included), ``?`` one
character, anything else itself; ``order.*`` matches ``order.created`` and ``order.item.added``. The same pattern
is turned into a regular expression here and into a SQL ``LIKE`` for the store, so both sides agree.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, Field

from tasker.errors import InvalidEventQueryError
from tasker.model.template import DeliveryMode, EventCondition, EventDeclaration
from tasker.model.wire import UtcDateTime

Outcome = Literal["success", "retryable_failure", "permanent_failure"]
EVENT_VERSION = "1.0"
NOTIFY_CHANNEL = "tasker_domain_events"  # signal only (empty payload): subscribers read the table
DURABLE_MODES: frozenset[str] = frozenset({"durable", "broadcast"})
FAST_MODES: frozenset[str] = frozenset({"fast", "broadcast"})
_MATCHED_BY: dict[EventCondition, frozenset[Outcome]] = {
    "success": frozenset({"success"}),
    "failure": frozenset({"retryable_failure", "permanent_failure"}),
    "retryable_failure": frozenset({"retryable_failure"}),
    "permanent_failure": frozenset({"permanent_failure"}),
    "always": frozenset({"success", "retryable_failure", "permanent_failure"}),
}


def outcome_of(
    *, success: bool, error_retryable: bool, step_retryable: bool, attempts: int, max_attempts: int
) -> Outcome:
    """The outcome as orchestration will treat it (the same rule as ``engine.results``: a failure is retried only
    when the error and the step are retryable and attempts are left)."""
    if success:
        return "success"
    if error_retryable and step_retryable and attempts < max_attempts:
        return "retryable_failure"
    return "permanent_failure"


def condition_matches(condition: EventCondition, outcome: Outcome) -> bool:
    return outcome in _MATCHED_BY[condition]


@dataclass(frozen=True)
class EventSource:
    """The step whose result publishes: its identifiers, as the envelope names them."""

    task_uuid: UUID
    step_uuid: UUID
    step_name: str
    namespace: str
    task_name: str
    task_version: str
    correlation_id: UUID | None
    worker_id: str
    attempt: int


@dataclass(frozen=True)
class DomainEvent:
    """One event. ``payload`` is the whole envelope (:func:`envelope`); ``created_at`` is set once stored."""

    event_uuid: UUID
    name: str
    namespace: str
    task_uuid: UUID
    step_uuid: UUID
    step_name: str
    condition: EventCondition
    outcome: Outcome
    delivery_mode: DeliveryMode
    payload: dict[str, Any]
    created_at: datetime | None = None

    @property
    def durable(self) -> bool:
        return self.delivery_mode in DURABLE_MODES

    @property
    def fast(self) -> bool:
        return self.delivery_mode in FAST_MODES

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_uuid": self.event_uuid,
            "name": self.name,
            "namespace": self.namespace,
            "task_uuid": self.task_uuid,
            "step_uuid": self.step_uuid,
            "step_name": self.step_name,
            "condition": self.condition,
            "outcome": self.outcome,
            "delivery_mode": self.delivery_mode,
            "payload": self.payload,
            "created_at": self.created_at,
        }


def business_payload(stored_result: dict[str, Any]) -> Any:
    """What the event is about: the handler's result on success, its error on failure (checked against the
    declaration's ``schema``)."""
    return stored_result.get("result") if stored_result.get("success") else stored_result.get("error")


def envelope(
    event_uuid: UUID, declaration: EventDeclaration, source: EventSource, stored_result: dict[str, Any], fired_at: str
) -> dict[str, Any]:
    """tasker-core's envelope: the event's id, name and version; the payload (the business payload plus the
    step's execution result as stored in ``workflow_steps.results``); the metadata naming task, step and
    correlation id. Every identifier is a string, so the envelope is the same JSON in the table and in memory."""
    return {
        "event_id": str(event_uuid),
        "event_name": declaration.name,
        "event_version": EVENT_VERSION,
        "payload": {"payload": business_payload(stored_result), "execution_result": stored_result},
        "metadata": {
            "task_uuid": str(source.task_uuid),
            "step_uuid": str(source.step_uuid),
            "step_name": source.step_name,
            "namespace": source.namespace,
            "task_name": source.task_name,
            "task_version": source.task_version,
            "correlation_id": str(source.correlation_id) if source.correlation_id else None,
            "attempt": source.attempt,
            "fired_at": fired_at,
            "fired_by": source.worker_id,
        },
    }


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    """A checked validator per distinct schema (templates repeat them for every result)."""
    schema = json.loads(schema_json)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_problem(declaration: EventDeclaration, payload: Any) -> str | None:
    """Why ``payload`` breaks the declaration's JSON Schema (or why the schema itself is broken); None when it
    conforms or nothing is declared."""
    if not declaration.schema_:
        return None
    try:
        validator = _validator(json.dumps(declaration.schema_, sort_keys=True))
    except SchemaError as exc:
        return f"its schema is not valid JSON Schema: {exc.message}"
    error = next(iter(validator.iter_errors(payload)), None)
    if error is None:
        return None
    where = "/" + "/".join(str(p) for p in error.absolute_path)
    return f"its payload does not match its schema at {where}: {error.message}"


@dataclass(frozen=True)
class Skipped:
    """A declared event that matched but is not published, and why (its payload breaks its schema)."""

    name: str
    reason: str


def events_for(
    declarations: Sequence[EventDeclaration],
    outcome: Outcome,
    source: EventSource,
    stored_result: dict[str, Any],
    *,
    fired_at: str,
    new_uuid: Callable[[], UUID],
) -> tuple[list[DomainEvent], list[Skipped]]:
    """The events one stored result publishes, in declaration order, and the matching ones left out because their
    payload fails their schema. ``new_uuid()`` names each event (a UUID v7, so ids sort by time)."""
    events: list[DomainEvent] = []
    skipped: list[Skipped] = []
    for declaration in declarations:
        if not condition_matches(declaration.condition, outcome):
            continue
        problem = schema_problem(declaration, business_payload(stored_result))
        if problem is not None:
            skipped.append(Skipped(declaration.name, problem))
            continue
        event_uuid = new_uuid()
        events.append(
            DomainEvent(
                event_uuid=event_uuid,
                name=declaration.name,
                namespace=source.namespace,
                task_uuid=source.task_uuid,
                step_uuid=source.step_uuid,
                step_name=source.step_name,
                condition=declaration.condition,
                outcome=outcome,
                delivery_mode=declaration.delivery_mode,
                payload=envelope(event_uuid, declaration, source, stored_result, fired_at),
            )
        )
    return events, skipped


# --- patterns ------------------------------------------------------------------------------------------------


def is_glob(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def glob_to_like(pattern: str) -> str:
    r"""The SQL ``LIKE`` pattern (escape character ``\``) matching what the glob matches."""
    out = []
    for char in pattern:
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char in "%_\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


class Patterns:
    """A subscriber's patterns; no patterns (or ``*``) matches every event."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.globs = list(patterns)
        for glob in self.globs:
            if not glob.strip():
                raise InvalidEventQueryError("an event name pattern must not be empty")
        self._regexes = [_glob_regex(p) for p in self.globs]

    def matches(self, name: str) -> bool:
        return not self._regexes or any(r.fullmatch(name) for r in self._regexes)

    def like(self) -> list[str]:
        """The patterns as SQL ``LIKE`` patterns (an empty list matches everything)."""
        return [glob_to_like(p) for p in self.globs]


# --- REST bodies (GET /v1/events) ----------------------------------------------------------------------------


class DomainEventResponse(BaseModel):
    event_uuid: UUID
    name: str
    namespace: str
    task_uuid: UUID
    step_uuid: UUID
    step_name: str
    condition: EventCondition
    outcome: Outcome
    delivery_mode: DeliveryMode
    payload: dict[str, Any] = Field(description="the envelope: event_id, event_name, event_version, payload, metadata")
    created_at: UtcDateTime


class DomainEventListResponse(BaseModel):
    events: list[DomainEventResponse]
    count: int
    next_after: UUID | None = Field(
        description="pass as `after` to read the next page: the last event's id (or the given cursor when empty)"
    )
    has_more: bool = Field(description="the page is full: more events may follow right away")
    held_back: bool = Field(
        description="committed events wait behind an older running transaction; they appear on a read soon after"
    )
