"""A task's audit trail: its transitions, its steps' transitions and their result audit rows, in time order.

Read only; the statement lives in ``sql/audit.sql``.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from tasker.errors import NotFoundError
from tasker.store.db import Connection
from tasker.store.queries import Q


async def task_audit_trail(conn: Connection, task_uuid: UUID, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` events, oldest first, and whether there were more; NotFoundError for an unknown task."""
    rows = await (await conn.execute(Q["task_audit_trail"], {"task_uuid": task_uuid, "limit": limit})).fetchall()
    if not rows:
        raise NotFoundError(f"task {task_uuid} does not exist", task_uuid=str(task_uuid))
    return rows[:limit], len(rows) > limit
