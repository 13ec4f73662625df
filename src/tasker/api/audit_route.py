"""``GET /v1/tasks/{task_uuid}/audit``: a task's whole audit trail in one call (an extension of tasker-core's API).

tasker-core answers a step's result audit (``.../workflow_steps/{step_uuid}/audit``) but not the task's and steps'
transitions, which the web console's audit trail shows; one route keeps that page to one round trip per task.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated
from uuid import UUID

from fastapi import Depends, FastAPI, Query, Request

from tasker.api.auth import require
from tasker.model import wire
from tasker.store import audit
from tasker.store.db import Connection

Db = Callable[[Request], AbstractAsyncContextManager[Connection]]


def register(app: FastAPI, db: Db) -> None:
    """Add the route; it needs ``tasks:read`` and ``steps:read`` (it shows both the task's and its steps' history)."""

    @app.get(
        "/v1/tasks/{task_uuid}/audit",
        response_model=wire.TaskAuditResponse,
        dependencies=[Depends(require("tasks:read")), Depends(require("steps:read"))],
        tags=["tasks"],
    )
    async def task_audit(
        request: Request, task_uuid: UUID, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
    ) -> wire.TaskAuditResponse:
        """The task's transitions, its steps' transitions and their result audit rows, oldest first."""
        async with db(request) as conn:
            rows, truncated = await audit.task_audit_trail(conn, task_uuid, limit=limit)
        return wire.TaskAuditResponse(
            task_uuid=task_uuid,
            events=[wire.TaskAuditEvent.model_validate(row) for row in rows],
            limit=limit,
            truncated=truncated,
        )
