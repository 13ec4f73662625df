"""Where the CLI's task commands go: the REST API (``--api-url`` / ``TASKER_API_URL``) or the database directly.

Both backends have the same methods and return the same wire models, so each command is written once. The service
layer, the store and the HTTP client are imported when a command first uses a backend, not when the CLI starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from uuid import UUID

from tasker.cli.common import database_url, run, settings

if TYPE_CHECKING:
    from tasker.messaging.transport import Transport
    from tasker.model import wire
    from tasker.model.requests import TaskRequest
    from tasker.store.db import Connection

T = TypeVar("T")


class Backend(Protocol):
    def create_task(self, request: TaskRequest | dict[str, Any]) -> wire.TaskResponse: ...
    def list_tasks(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        status: str | None = None,
        initiator: str | None = None,
        source_system: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> wire.TaskListResponse: ...
    def get_task(self, task_uuid: UUID | str) -> wire.TaskResponse: ...
    def cancel_task(self, task_uuid: UUID | str) -> wire.TaskResponse: ...
    def task_summary(self, task_uuid: UUID | str) -> wire.TaskSummaryResponse: ...
    def list_steps(self, task_uuid: UUID | str) -> list[wire.StepResponse]: ...
    def get_step(self, task_uuid: UUID | str, step_uuid: UUID | str) -> wire.StepResponse: ...
    def step_action(
        self, task_uuid: UUID | str, step_uuid: UUID | str, action: wire.StepActionRequest
    ) -> wire.StepResponse: ...
    def step_audit(self, task_uuid: UUID | str, step_uuid: UUID | str) -> list[wire.StepAuditResponse]: ...
    def retry_failed(self, task_uuid: UUID | str) -> wire.TaskResponse: ...
    def health(self, which: str = "") -> wire.HealthResponse: ...


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


class DirectBackend:
    """Runs the API's operations on a database connection of its own, one connection per call."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.env = settings().env

    def _run(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        from tasker.store.db import connection

        async def _call() -> T:
            async with connection(self.url) as conn:
                return await operation(conn)

        return run(_call())

    def _with_transport(self, operation: Callable[[Connection, Transport], Awaitable[T]]) -> T:
        """Run ``operation`` with the configured transport, closed afterwards (RabbitMQ: the outbox is flushed)."""
        from tasker.messaging.factory import make_transport
        from tasker.store.db import connection

        async def _call() -> T:
            transport = make_transport(settings(), self.url)
            try:
                async with connection(self.url) as conn:
                    return await operation(conn, transport)
            finally:
                await transport.close()

        return run(_call())

    def create_task(self, request: TaskRequest | dict[str, Any]) -> wire.TaskResponse:
        from tasker import service as operations
        from tasker.model.requests import TaskRequest

        parsed = request if isinstance(request, TaskRequest) else TaskRequest.model_validate(request)
        return self._with_transport(lambda conn, transport: operations.create(conn, transport, parsed, env=self.env))

    def list_tasks(
        self,
        *,
        namespace: str | None = None,
        name: str | None = None,
        status: str | None = None,
        initiator: str | None = None,
        source_system: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> wire.TaskListResponse:
        from tasker import service as operations
        from tasker.store.listing import TaskFilter

        where = TaskFilter(namespace, name, status, initiator, source_system)
        return self._run(lambda conn: operations.list_tasks(conn, where, page=page, per_page=per_page))

    def get_task(self, task_uuid: UUID | str) -> wire.TaskResponse:
        from tasker import service as operations

        return self._run(lambda conn: operations.get_task(conn, _uuid(task_uuid)))

    def cancel_task(self, task_uuid: UUID | str) -> wire.TaskResponse:
        from tasker import service as operations

        return self._run(lambda conn: operations.cancel(conn, _uuid(task_uuid), actor="cli"))

    def task_summary(self, task_uuid: UUID | str) -> wire.TaskSummaryResponse:
        from tasker import service as operations

        return self._run(lambda conn: operations.summary(conn, _uuid(task_uuid)))

    def list_steps(self, task_uuid: UUID | str) -> list[wire.StepResponse]:
        from tasker import service as operations

        return self._run(lambda conn: operations.list_steps(conn, _uuid(task_uuid)))

    def get_step(self, task_uuid: UUID | str, step_uuid: UUID | str) -> wire.StepResponse:
        from tasker import service as operations

        return self._run(lambda conn: operations.get_step(conn, _uuid(task_uuid), _uuid(step_uuid)))

    def step_action(
        self, task_uuid: UUID | str, step_uuid: UUID | str, action: wire.StepActionRequest
    ) -> wire.StepResponse:
        from tasker import service as operations

        return self._with_transport(
            lambda conn, transport: operations.act_on_step(conn, transport, _uuid(task_uuid), _uuid(step_uuid), action)
        )

    def step_audit(self, task_uuid: UUID | str, step_uuid: UUID | str) -> list[wire.StepAuditResponse]:
        from tasker import service as operations

        return self._run(lambda conn: operations.audit(conn, _uuid(task_uuid), _uuid(step_uuid)))

    def retry_failed(self, task_uuid: UUID | str) -> wire.TaskResponse:
        from tasker import service as operations

        return self._with_transport(
            lambda conn, transport: operations.retry_failed(conn, transport, _uuid(task_uuid), actor="cli")
        )

    def health(self, which: str = "") -> wire.HealthResponse:
        from datetime import UTC, datetime

        from tasker import service as operations
        from tasker.model import wire

        async def _check(conn: Connection) -> wire.HealthResponse:
            counts = await operations.health_counts(conn)
            return wire.HealthResponse(
                status="healthy",
                timestamp=datetime.now(UTC),
                checks={"database": wire.HealthCheck(status="healthy", message="database reachable")},
                info={"system_health": counts.model_dump(), "mode": "direct database"},
            )

        return self._run(_check)


_options: dict[str, str | None] = {"api_url": None, "api_key": None, "token": None}


def configure(api_url: str | None, api_key: str | None, token: str | None) -> None:
    _options.update(api_url=api_url, api_key=api_key, token=token)


def backend() -> Backend:
    """The API client when an API URL is given (option or settings), otherwise the database."""
    current = settings()
    url = _options["api_url"] or current.api_url
    if not url:
        return DirectBackend()
    from tasker.client import TaskerClient

    key = _options["api_key"] or (current.api_key.get_secret_value() if current.api_key else None)
    token = _options["token"] or (current.auth_token.get_secret_value() if current.auth_token else None)
    return TaskerClient(url, api_key=key, token=token, api_key_header=current.api_key_header)
