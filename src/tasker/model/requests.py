"""What a client asks for when it creates a task, and the checks on it that need no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NaiveDatetime

from tasker.errors import InvalidContextError, TemplateError

REASON_MAX_LENGTH = 500
REASON_COLUMN_LENGTH = 128  # tasks.reason is varchar(128) in the schema


class TaskRequest(BaseModel):
    """Body of ``POST /v1/tasks`` (tasker-core field names)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    namespace: str = Field(min_length=1, max_length=64)
    version: str = Field(default="1.0.0", min_length=1, max_length=16)
    context: dict[str, Any] = Field(default_factory=dict)
    initiator: str | None = Field(default=None, max_length=128)
    source_system: str | None = Field(default=None, max_length=128)
    # tasker-core allows 500 characters; the column holds 128, so a longer reason is stored cut there and kept
    # whole in the task's first transition (metadata.request.reason)
    reason: str | None = Field(default=None, max_length=REASON_MAX_LENGTH)
    tags: list[str] = Field(default_factory=list)
    priority: int = Field(default=0, ge=-100, le=100)
    correlation_id: UUID | None = None
    parent_correlation_id: UUID | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    # sent by tasker-core's client: when the caller asked (stored as tasks.requested_at, in UTC), and free-form
    # options (kept on the first transition; Tasker acts on none of them)
    requested_at: AwareDatetime | NaiveDatetime | None = None
    options: dict[str, Any] | None = None

    def requested_at_utc(self) -> datetime | None:
        """``requested_at`` as naive UTC (the column's convention); a time without offset is taken as UTC."""
        if self.requested_at is None:
            return None
        if self.requested_at.tzinfo is None:
            return self.requested_at
        return self.requested_at.astimezone(UTC).replace(tzinfo=None)

    def stored_reason(self) -> str | None:
        return None if self.reason is None else self.reason[:REASON_COLUMN_LENGTH]

    def details(self) -> dict[str, Any]:
        """What the columns cannot hold, for the first transition's metadata."""
        details: dict[str, Any] = {}
        if self.options:
            details["options"] = self.options
        if self.reason is not None and len(self.reason) > REASON_COLUMN_LENGTH:
            details["reason"] = self.reason
        return details


def validate_context(schema: dict[str, Any] | None, context: dict[str, Any], template_key: str) -> None:
    """Check the context against the template's ``input_schema``; the error lists every failing field."""
    if not schema:
        return
    try:
        validator = Draft202012Validator(schema)
    except SchemaError as exc:  # pragma: no cover - templates are validated at registration
        raise TemplateError(f"{template_key}: input_schema is not valid JSON Schema: {exc.message}") from exc
    errors = sorted(validator.iter_errors(context), key=lambda e: (_pointer(_path_of(e)), e.message))
    if not errors:
        return
    failures = [{"field": _pointer(_path_of(error)), "message": error.message} for error in errors]
    listing = "; ".join(f"{f['field']}: {f['message']}" for f in failures)
    raise InvalidContextError(f"context does not match the input schema of {template_key}: {listing}", errors=failures)


def _path_of(error: ValidationError) -> list[Any]:
    """Where the error is; a missing required property points at the property itself, not its parent."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [name for name in required if name not in error.instance]
        match = [name for name in missing if repr(name) in error.message]
        if match:
            path.append(match[0])
    return path


def _pointer(path: list[Any]) -> str:
    """RFC 6901 JSON pointer of a failing value ('' is the whole context, shown as '/')."""
    if not path:
        return "/"
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
