"""The API's error bodies as typed exceptions; each is also the matching :mod:`tasker.errors` class."""

from __future__ import annotations

from typing import Any

import httpx

from tasker import errors


class ApiError(errors.TaskerError):
    """The API answered with an error."""

    status_code = 0

    def __init__(self, message: str | None = None, *, status_code: int = 0, code: str | None = None, **details: Any):
        super().__init__(message, **details)
        self.status_code = status_code
        if code:
            self.code = code


class BadRequestError(ApiError, errors.InvalidTaskRequestError):
    """The request was malformed."""


class UnauthorizedError(ApiError):
    """Missing or invalid credentials."""

    code = "UNAUTHORIZED"


class ForbiddenError(ApiError):
    """The credentials lack the permission this call needs."""

    code = "FORBIDDEN"


class NotFoundError(ApiError, errors.NotFoundError):
    """No such task, step or template."""


class DuplicateTaskError(ApiError, errors.DuplicateTaskError):
    """A task with this identity already exists (``existing_task_uuid``)."""

    @property
    def existing_task_uuid(self) -> str | None:
        value = self.details.get("existing_task_uuid")
        return None if value is None else str(value)


class ConflictError(ApiError, errors.InvalidTransitionError):
    """The state does not allow this action."""


class InvalidContextError(ApiError, errors.InvalidContextError):
    """The context fails the template's input schema (``details["errors"]`` lists every field)."""


class PayloadTooLargeError(ApiError):
    """The request body is over the server's limit."""


class BackpressureError(ApiError):
    """The server is shedding load; retry after ``retry_after_seconds``."""

    retry_after_seconds: int = 0


class ServerError(ApiError):
    """The server failed."""


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()["error"]
        code, message, details = str(body["code"]), str(body["message"]), dict(body.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code, message, details = "HTTP_ERROR", response.text[:500] or response.reason_phrase, {}
    status = response.status_code
    kind: type[ApiError]
    if status == 409:
        kind = DuplicateTaskError if "existing_task_uuid" in details else ConflictError
    else:
        kind = {
            400: BadRequestError,
            401: UnauthorizedError,
            403: ForbiddenError,
            404: NotFoundError,
            413: PayloadTooLargeError,
            422: InvalidContextError,
            503: BackpressureError,
        }.get(status, ServerError if status >= 500 else ApiError)
    error = kind(message, status_code=status, code=code, **details)
    if isinstance(error, BackpressureError):
        error.retry_after_seconds = int(response.headers.get("retry-after", "0") or 0)
    raise error
