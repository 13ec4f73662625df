"""Python client of the Tasker REST API (sync and async)."""

from tasker.client.errors import (
    ApiError,
    BackpressureError,
    BadRequestError,
    ConflictError,
    DuplicateTaskError,
    ForbiddenError,
    InvalidContextError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    UnauthorizedError,
)
from tasker.client.http import AsyncTaskerClient, TaskerClient

__all__ = [
    "ApiError",
    "AsyncTaskerClient",
    "BackpressureError",
    "BadRequestError",
    "ConflictError",
    "DuplicateTaskError",
    "ForbiddenError",
    "InvalidContextError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ServerError",
    "TaskerClient",
    "UnauthorizedError",
]
