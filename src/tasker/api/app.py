"""The REST API: ``create_app(settings)`` builds the FastAPI application; its lifespan owns the connection pool.

Routes and field names are tasker-core's (``/v1/...``). Handlers are thin: authentication (a dependency, run
before any body is read), body parsing, then an operation from :mod:`tasker.service`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from starlette.routing import Match

from tasker import service as operations
from tasker.api import audit_route, config_route, errors, openapi, ui
from tasker.api import dlq as dlq_routes
from tasker.api import events as event_routes
from tasker.api.auth import may, require
from tasker.api.errors import ApiError
from tasker.api.limits import BodyLimit
from tasker.api.metrics import ApiMetrics
from tasker.config import Settings
from tasker.errors import ConfigurationError
from tasker.messaging.factory import make_transport
from tasker.messaging.router import ORCHESTRATION_QUEUES, worker_queue
from tasker.model import wire
from tasker.model.requests import TaskRequest
from tasker.store import embedded, listing
from tasker.store.db import Connection, create_pool

M = TypeVar("M", bound=BaseModel)
VERSION = "0.1.0"
OPENAPI_URL = "/api-docs/openapi.json"


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(settings: Settings, *, database_url: str | None = None) -> FastAPI:
    url = database_url or embedded.database_url(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = create_pool(
            url, min_size=settings.pool_min_size, max_size=settings.pool_max_size, application_name="tasker-api"
        )
        await pool.open()
        app.state.pool = pool
        try:
            yield
        finally:
            await app.state.transport.close()
            await pool.close()

    app = FastAPI(
        title="Tasker",
        version=VERSION,
        description="PostgreSQL-backed workflow orchestration (tasker-core compatible routes)",
        lifespan=lifespan,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # served by tasker.api.openapi from the package's own assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.transport = make_transport(settings, url)
    metrics = ApiMetrics()
    errors.install(app)
    openapi.install(app, settings, openapi_url=OPENAPI_URL, docs_urls=("/docs", "/api-docs/ui"))
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)  # inside count_requests: 413s are counted

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        route = "unmatched"
        for candidate in app.router.routes:
            match, _ = candidate.matches(request.scope)
            if match is Match.FULL:
                route = getattr(candidate, "path", "unmatched")
                break
        response = await call_next(request)
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    @asynccontextmanager
    async def db(request: Request) -> AsyncIterator[Connection]:
        async with request.app.state.pool.connection() as conn:
            yield conn

    async def body_of(request: Request, model: type[M]) -> M:
        raw = await request.body()  # BodyLimit answers 413 while it streams in
        if not raw.strip():
            raise ApiError(400, "BAD_REQUEST", "request body is empty: send a JSON object")
        return model.model_validate_json(raw)

    def shown(request: Request, task: wire.TaskResponse) -> wire.TaskResponse:
        """What the caller may see of a task: the context needs tasks:context_read, step results steps:read."""
        update: dict[str, Any] = {}
        if not may(request, "tasks:context_read"):
            update["context"] = None
        if task.steps and not may(request, "steps:read"):
            update["steps"] = [step.model_copy(update={"results": None}) for step in task.steps]
        return task.model_copy(update=update) if update else task

    async def check_backpressure(conn: Connection, namespace: str) -> None:
        threshold = settings.backpressure_queue_depth
        if threshold <= 0:
            return
        try:
            watched = {worker_queue(namespace), *ORCHESTRATION_QUEUES}
        except ConfigurationError:
            watched = set(ORCHESTRATION_QUEUES)
        depths = await listing.queue_depths(conn)
        full = sorted(q for q in watched if depths.get(q, 0) >= threshold)
        if full:
            wait = settings.backpressure_retry_after_seconds
            raise ApiError(
                503,
                "BACKPRESSURE",
                f"queue(s) {', '.join(full)} hold {threshold} or more messages; retry in {wait} s",
                headers={"Retry-After": str(wait)},
                retry_after_seconds=wait,
            )

    # --- tasks -----------------------------------------------------------------------------------------------

    @app.post(
        "/v1/tasks",
        status_code=201,
        response_model=wire.TaskResponse,
        dependencies=[Depends(require("tasks:create"))],
        openapi_extra=_body_doc(TaskRequest),
        responses={
            404: {"description": "no such template (namespace, name, version)"},
            409: {"description": "a task with this identity exists; the message names it"},
            422: {"description": "the context fails the template's input_schema; every field is listed"},
            503: {"description": "backpressure: a queue the task would feed is full; see Retry-After"},
        },
        tags=["tasks"],
    )
    async def create_task(request: Request) -> wire.TaskResponse:
        task_request = await body_of(request, TaskRequest)
        async with db(request) as conn:
            await check_backpressure(conn, task_request.namespace)
            created = await operations.create(conn, request.app.state.transport, task_request, env=settings.env)
        return shown(request, created)

    @app.get(
        "/v1/tasks",
        response_model=wire.TaskListResponse,
        dependencies=[Depends(require("tasks:list"))],
        tags=["tasks"],
    )
    async def list_tasks(
        request: Request,
        page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=100)] = 25,
        namespace: Annotated[str | None, Query(max_length=255)] = None,
        name: Annotated[str | None, Query(max_length=255)] = None,
        task_name: Annotated[str | None, Query(max_length=255)] = None,
        status: Annotated[str | None, Query(max_length=64)] = None,
        state: Annotated[str | None, Query(max_length=64)] = None,
        initiator: Annotated[str | None, Query(max_length=255)] = None,
        source_system: Annotated[str | None, Query(max_length=255)] = None,
    ) -> wire.TaskListResponse:
        where = listing.TaskFilter(
            namespace=namespace,
            name=name or task_name,
            state=status or state,
            initiator=initiator,
            source_system=source_system,
        )
        async with db(request) as conn:
            found = await operations.list_tasks(conn, where, page=page, per_page=per_page)
        return found.model_copy(update={"tasks": [shown(request, task) for task in found.tasks]})

    @app.get(
        "/v1/tasks/{task_uuid}",
        response_model=wire.TaskResponse,
        dependencies=[Depends(require("tasks:read"))],
        tags=["tasks"],
    )
    async def get_task(request: Request, task_uuid: UUID) -> wire.TaskResponse:
        async with db(request) as conn:
            return shown(request, await operations.get_task(conn, task_uuid))

    @app.delete(
        "/v1/tasks/{task_uuid}",
        response_model=wire.TaskResponse,
        dependencies=[Depends(require("tasks:cancel"))],
        responses={409: {"description": "the task cannot be cancelled in its state"}},
        tags=["tasks"],
    )
    async def cancel_task(request: Request, task_uuid: UUID) -> wire.TaskResponse:
        async with db(request) as conn:
            return shown(request, await operations.cancel(conn, task_uuid))

    @app.get(
        "/v1/tasks/{task_uuid}/summary",
        response_model=wire.TaskSummaryResponse,
        dependencies=[Depends(require("tasks:read")), Depends(require("steps:read"))],
        tags=["tasks"],
    )
    async def task_summary(request: Request, task_uuid: UUID) -> wire.TaskSummaryResponse:
        """The task with its steps and their results, so it needs steps:read as well as tasks:read."""
        async with db(request) as conn:
            summary = await operations.summary(conn, task_uuid)
        return summary.model_copy(update={"task": shown(request, summary.task)})

    # --- steps -----------------------------------------------------------------------------------------------

    @app.get(
        "/v1/tasks/{task_uuid}/workflow_steps",
        response_model=list[wire.StepResponse],
        dependencies=[Depends(require("steps:read"))],
        tags=["steps"],
    )
    async def list_steps(request: Request, task_uuid: UUID) -> list[wire.StepResponse]:
        async with db(request) as conn:
            return await operations.list_steps(conn, task_uuid)

    @app.get(
        "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}",
        response_model=wire.StepResponse,
        dependencies=[Depends(require("steps:read"))],
        tags=["steps"],
    )
    async def get_step(request: Request, task_uuid: UUID, step_uuid: UUID) -> wire.StepResponse:
        async with db(request) as conn:
            return await operations.get_step(conn, task_uuid, step_uuid)

    @app.post(
        "/v1/tasks/{task_uuid}/retry_failed",
        response_model=wire.TaskResponse,
        dependencies=[Depends(require("steps:resolve"))],
        responses={409: {"description": "a step of the task cannot be retried in its state"}},
        tags=["steps"],
    )
    async def retry_failed(request: Request, task_uuid: UUID) -> wire.TaskResponse:
        """Reset every failed step of the task for retry; the task resumes (an extension of tasker-core's API)."""
        async with db(request) as conn:
            return shown(request, await operations.retry_failed(conn, request.app.state.transport, task_uuid))

    @app.patch(
        "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}",
        response_model=wire.StepResponse,
        dependencies=[Depends(require("steps:resolve"))],
        openapi_extra=_body_doc(wire.StepActionRequest),
        responses={409: {"description": "the action is not allowed in the step's state"}},
        tags=["steps"],
    )
    async def act_on_step(request: Request, task_uuid: UUID, step_uuid: UUID) -> wire.StepResponse:
        action = await body_of(request, wire.StepActionRequest)
        async with db(request) as conn:
            return await operations.act_on_step(conn, request.app.state.transport, task_uuid, step_uuid, action)

    @app.get(
        "/v1/tasks/{task_uuid}/workflow_steps/{step_uuid}/audit",
        response_model=list[wire.StepAuditResponse],
        dependencies=[Depends(require("steps:read"))],
        tags=["steps"],
    )
    async def step_audit(request: Request, task_uuid: UUID, step_uuid: UUID) -> list[wire.StepAuditResponse]:
        async with db(request) as conn:
            return await operations.audit(conn, task_uuid, step_uuid)

    # --- templates -------------------------------------------------------------------------------------------

    @app.get(
        "/v1/templates",
        response_model=wire.TemplateListResponse,
        dependencies=[Depends(require("templates:read"))],
        tags=["templates"],
    )
    async def list_templates(
        request: Request, namespace: Annotated[str | None, Query(max_length=255)] = None
    ) -> wire.TemplateListResponse:
        async with db(request) as conn:
            return await operations.templates(conn, namespace)

    @app.post(
        "/v1/templates/validate",
        response_model=wire.TemplateValidateResponse,
        dependencies=[Depends(require("templates:validate"))],
        openapi_extra=_body_doc(wire.TemplateValidateRequest),
        tags=["templates"],
    )
    async def validate_template(request: Request) -> wire.TemplateValidateResponse:
        """An invalid template is a normal answer (``valid: false``); one over the loader's limits (alias bombs,
        deep nesting) is a 400. Parsing runs in a worker thread so a large template does not stall other requests."""
        if request.headers.get("content-type", "").split(";")[0].strip() in {"application/yaml", "text/yaml"}:
            raw = await request.body()
            body = wire.TemplateValidateRequest(yaml=raw.decode("utf-8", errors="replace"))
        else:
            body = await body_of(request, wire.TemplateValidateRequest)
        return await run_in_threadpool(operations.validate_template, body)

    @app.get(
        "/v1/templates/{namespace}/{name}/{version}",
        response_model=wire.TemplateDetail,
        dependencies=[Depends(require("templates:read"))],
        tags=["templates"],
    )
    async def get_template(request: Request, namespace: str, name: str, version: str) -> wire.TemplateDetail:
        async with db(request) as conn:
            return await operations.template(conn, namespace, name, version)

    # --- analytics -------------------------------------------------------------------------------------------

    def pool_utilization(request: Request) -> float:
        stats = request.app.state.pool.get_stats()
        in_use = int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))
        return max(in_use - 1, 0) / settings.pool_max_size  # not counting the connection asking

    @app.get(
        "/v1/analytics/performance",
        response_model=wire.AnalyticsPerformance,
        dependencies=[Depends(require("system:analytics_read"))],
        tags=["analytics"],
    )
    async def performance(
        request: Request, hours: Annotated[int, Query(ge=1, le=24 * 365)] = 24
    ) -> wire.AnalyticsPerformance:
        async with db(request) as conn:
            return await operations.performance(conn, hours)

    @app.get(
        "/v1/analytics/bottlenecks",
        response_model=wire.BottleneckAnalysis,
        dependencies=[Depends(require("system:analytics_read"))],
        tags=["analytics"],
    )
    async def bottlenecks(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        min_executions: Annotated[int, Query(ge=1, le=1_000_000)] = 5,
    ) -> wire.BottleneckAnalysis:
        async with db(request) as conn:
            return await operations.bottlenecks(
                conn, limit=limit, min_executions=min_executions, pool_utilization=pool_utilization(request)
            )

    # --- health and metrics (public) -------------------------------------------------------------------------

    dlq_routes.register(app, db, body_of)
    event_routes.register(app, db)
    config_route.register(app, settings)
    audit_route.register(app, db)
    ui.install(app)

    def now() -> datetime:
        return datetime.now(UTC)

    async def database_check(request: Request) -> wire.HealthCheck:
        started = time.perf_counter()
        try:
            async with db(request) as conn:
                await conn.execute("SELECT 1")
        except Exception as exc:  # any failure means "not ready"; the reason is logged, not returned
            errors.log.warning("readiness: database check failed: %s", type(exc).__name__)
            return wire.HealthCheck(status="unhealthy", message="database unreachable")
        return wire.HealthCheck(
            status="healthy", message="database reachable", duration_ms=(time.perf_counter() - started) * 1000
        )

    def info(request: Request) -> dict[str, Any]:
        stats = request.app.state.pool.get_stats()
        return {
            "version": VERSION,
            "environment": settings.env,
            "web_database_pool_size": stats.get("pool_size", 0),
            "pool_utilization": pool_utilization(request),
        }

    @app.get("/health", response_model=wire.HealthResponse, tags=["health"])
    async def health() -> wire.HealthResponse:
        return wire.HealthResponse(status="healthy", timestamp=now())

    @app.get("/health/live", response_model=wire.HealthResponse, tags=["health"])
    async def live() -> wire.HealthResponse:
        return wire.HealthResponse(status="alive", timestamp=now())

    @app.get(
        "/health/ready",
        response_model=wire.HealthResponse,
        tags=["health"],
        responses={503: {"model": wire.HealthResponse, "description": "not ready: the database check failed"}},
    )
    async def ready(request: Request, response: Response) -> wire.HealthResponse:
        check = await database_check(request)
        if check.status != "healthy":
            response.status_code = 503
        status = "ready" if check.status == "healthy" else "not_ready"
        return wire.HealthResponse(status=status, timestamp=now(), checks={"web_database": check}, info=info(request))

    @app.get(
        "/health/detailed",
        response_model=wire.HealthResponse,
        tags=["health"],
        responses={503: {"model": wire.HealthResponse, "description": "not ready: the database check failed"}},
    )
    async def detailed(request: Request, response: Response) -> wire.HealthResponse:
        check = await database_check(request)
        extra: dict[str, Any] = {}
        if check.status == "healthy":
            async with db(request) as conn:
                extra["queue_depth"] = await listing.queue_depths(conn)
                extra["system_health"] = (await operations.health_counts(conn)).model_dump()
        else:
            response.status_code = 503
        return wire.HealthResponse(
            status=check.status, timestamp=now(), checks={"web_database": check}, info={**info(request), **extra}
        )

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    async def prometheus(request: Request) -> Response:
        async with db(request) as conn:
            states = await listing.state_counts_by_namespace(conn)
            queues = await listing.queue_depths(conn)
            dlq = await listing.dlq_counts(conn)
        body = metrics.render(states, queues, dlq)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> dict[str, Any]:
        return app.openapi()

    return app
