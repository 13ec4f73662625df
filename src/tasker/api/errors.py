"""The one place where errors become HTTP: status codes, and the body ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tasker import errors

log = logging.getLogger(__name__)


class ApiError(errors.TaskerError):
    """An error raised by the API layer itself (authentication, backpressure, malformed requests)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any):
        super().__init__(message, **details)
        self.status = status
        self.code = code
        self.headers = headers or {}


# first match wins, so subclasses come before their bases
STATUS: list[tuple[type[errors.TaskerError], int]] = [
    (errors.InvalidContextError, 422),
    (errors.DuplicateTaskError, 409),
    (errors.InvalidTransitionError, 409),
    (errors.LostRaceError, 409),
    (errors.TemplateConflictError, 409),
    (errors.NotFoundError, 404),
    (errors.InvalidTaskRequestError, 400),
    (errors.InvalidEventQueryError, 400),
    (errors.TemplateError, 400),
    (errors.ConfigurationError, 400),
    (errors.DatabaseUnavailableError, 503),
]

# details that are safe and useful to return to the caller
PUBLIC_DETAILS = ("existing_task_uuid", "errors", "fields")


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    public = {k: v for k, v in (details or {}).items() if k in PUBLIC_DETAILS}
    if public:
        body["details"] = public
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def field_errors(exc: ValidationError | RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    """Name every field at fault: ``body.context: Input should be a valid dictionary``."""
    found = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        found.append({"field": location, "message": str(error.get("msg", "invalid"))})
    listing = "; ".join(f"{f['field']}: {f['message']}" for f in found)
    return f"invalid request: {listing}", found


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        extra = {"retry_after_seconds": exc.details["retry_after_seconds"]} if exc.status == 503 else {}
        return error_response(exc.status, exc.code, exc.message, headers=exc.headers, **extra)

    @app.exception_handler(errors.TaskerError)
    async def _tasker(_: Request, exc: errors.TaskerError) -> JSONResponse:
        for kind, status in STATUS:
            if isinstance(exc, kind):
                return error_response(status, exc.code, exc.message, exc.details)
        log.error("unexpected Tasker error: %s", exc.message)
        return error_response(500, "INTERNAL_ERROR", "internal error")

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, found = field_errors(exc)
        return error_response(400, "BAD_REQUEST", message, {"fields": found})

    @app.exception_handler(ValidationError)
    async def _body(_: Request, exc: ValidationError) -> JSONResponse:
        message, found = field_errors(exc)
        return error_response(400, "BAD_REQUEST", message, {"fields": found})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
        return error_response(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), str(exc.detail))

    @app.exception_handler(psycopg.DataError)
    async def _data(_: Request, exc: psycopg.DataError) -> JSONResponse:
        # values PostgreSQL cannot hold (NUL characters, out-of-range numbers) are the caller's input at fault
        return error_response(400, "BAD_REQUEST", "a value in the request cannot be stored (e.g. a NUL character)")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "INTERNAL_ERROR", "internal error")
