"""``/v1/dlq``: the dead-letter queue for operators (``dlq:*`` permissions), on ``tasker.store.dlq``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request

from tasker.api.auth import may, require
from tasker.model import wire
from tasker.store import dlq
from tasker.store.db import Connection

Db = Callable[[Request], AbstractAsyncContextManager[Connection]]


def _shown(request: Request, entry: dict[str, Any]) -> dict[str, Any]:
    """The snapshot's copy of the task row holds its context, which needs tasks:context_read like the task routes."""
    snapshot = entry.get("task_snapshot")
    if (
        may(request, "tasks:context_read")
        or not isinstance(snapshot, dict)
        or not isinstance(snapshot.get("task"), dict)
    ):
        return entry
    return {**entry, "task_snapshot": {**snapshot, "task": {**snapshot["task"], "context": None}}}


def _utc(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The columns are ``timestamp`` holding UTC; say so in the JSON (``...Z``) as the typed responses do."""
    return [
        {k: v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for k, v in row.items()}
        for row in rows
    ]


def register(app: FastAPI, db: Db, body_of: Callable[[Request, type[wire.DlqEntryUpdate]], Awaitable[Any]]) -> None:
    """Add the DLQ routes to ``app`` (``db`` gives a pooled connection, ``body_of`` parses a JSON body)."""

    @app.get("/v1/dlq", tags=["dlq"], response_model=wire.DlqListResponse, dependencies=[Depends(require("dlq:read"))])
    async def list_entries(
        request: Request,
        resolution_status: str | None = None,
        dlq_reason: str | None = None,
        limit: int = Query(50, ge=1, le=1000),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        async with db(request) as conn:
            page = await dlq.dlq_list(
                conn, resolution_status=resolution_status, dlq_reason=dlq_reason, limit=limit, offset=offset
            )
        entries = [_shown(request, entry) for entry in page.entries]
        return {"entries": entries, "total": page.total, "limit": page.limit, "offset": page.offset}

    @app.get(
        "/v1/dlq/task/{task_uuid}",
        tags=["dlq"],
        response_model=wire.DlqTaskEntries,
        dependencies=[Depends(require("dlq:read"))],
    )
    async def entries_of_task(request: Request, task_uuid: UUID) -> dict[str, Any]:
        async with db(request) as conn:
            entries = await dlq.dlq_entries_for_task(conn, task_uuid)
        return {"task_uuid": task_uuid, "entries": [_shown(request, entry) for entry in entries]}

    @app.get(
        "/v1/dlq/entry/{dlq_entry_uuid}",
        tags=["dlq"],
        response_model=wire.DlqEntry,
        dependencies=[Depends(require("dlq:read"))],
    )
    async def get_entry(request: Request, dlq_entry_uuid: UUID) -> dict[str, Any]:
        async with db(request) as conn:
            return _shown(request, await dlq.dlq_get(conn, dlq_entry_uuid))

    @app.patch(
        "/v1/dlq/entry/{dlq_entry_uuid}",
        tags=["dlq"],
        response_model=wire.DlqEntry,
        dependencies=[Depends(require("dlq:update"))],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": wire.DlqEntryUpdate.model_json_schema()}},
            }
        },
    )
    async def update_entry(request: Request, dlq_entry_uuid: UUID) -> dict[str, Any]:
        update: wire.DlqEntryUpdate = await body_of(request, wire.DlqEntryUpdate)
        async with db(request) as conn, conn.transaction():
            updated = await dlq.dlq_update(
                conn,
                dlq_entry_uuid,
                resolution_status=update.resolution_status,
                resolution_notes=update.resolution_notes,
                resolved_by=update.resolved_by,
                metadata=update.metadata,
            )
        return _shown(request, updated)

    @app.get("/v1/dlq/stats", tags=["dlq"], dependencies=[Depends(require("dlq:stats"))])
    async def stats(request: Request) -> dict[str, Any]:
        async with db(request) as conn:
            return {"by_reason": _utc(await dlq.dlq_stats(conn))}

    @app.get("/v1/dlq/investigation-queue", tags=["dlq"], dependencies=[Depends(require("dlq:read"))])
    async def investigation_queue(request: Request, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        async with db(request) as conn:
            return {"entries": _utc(await dlq.dlq_investigation_queue(conn, limit=limit))}

    @app.get("/v1/dlq/staleness", tags=["dlq"], dependencies=[Depends(require("dlq:read"))])
    async def staleness(
        request: Request, health_status: str | None = None, limit: int = Query(100, ge=1, le=1000)
    ) -> dict[str, Any]:
        async with db(request) as conn:
            rows = await dlq.dlq_staleness_monitoring(conn, health_status=health_status, limit=limit)
        return {"tasks": _utc(rows)}
