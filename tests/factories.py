"""Rows in any shape, inserted directly, so store and engine tests need not replay the whole machine."""

from __future__ import annotations

import uuid
from uuid import UUID

from tasker.store.db import Connection
from tasker.store.transitions import step_initial_transition_many, task_initial_transition_many


async def insert_task_with_steps(
    conn: Connection, step_names: list[str], edges: list[tuple[str, str]] | None = None, *, max_attempts: int = 3
) -> tuple[UUID, dict[str, UUID]]:
    """A pending task with pending steps joined by ``provides`` edges (parent, child); returns task and step ids."""
    suffix = uuid.uuid4().hex[:8]
    row = await (
        await conn.execute(
            """
            WITH ns AS (INSERT INTO tasker.task_namespaces (name) VALUES (%(ns)s) RETURNING task_namespace_uuid),
                 nt AS (INSERT INTO tasker.named_tasks (task_namespace_uuid, name)
                        SELECT task_namespace_uuid, 'factory' FROM ns RETURNING named_task_uuid)
            INSERT INTO tasker.tasks (named_task_uuid, identity_hash, correlation_id)
            SELECT named_task_uuid, %(hash)s, uuid_generate_v7() FROM nt RETURNING task_uuid
            """,
            {"ns": f"ns_{suffix}", "hash": suffix},
        )
    ).fetchone()
    assert row is not None
    task_uuid: UUID = row["task_uuid"]
    steps: dict[str, UUID] = {}
    for name in step_names:
        step_row = await (
            await conn.execute(
                """
                WITH s AS (INSERT INTO tasker.named_steps (name) VALUES (%(name)s)
                           ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING named_step_uuid)
                INSERT INTO tasker.workflow_steps (task_uuid, named_step_uuid, max_attempts)
                SELECT %(task)s, named_step_uuid, %(max)s FROM s RETURNING workflow_step_uuid
                """,
                {"name": f"{name}_{suffix}", "task": task_uuid, "max": max_attempts},
            )
        ).fetchone()
        assert step_row is not None
        steps[name] = step_row["workflow_step_uuid"]
    for parent, child in edges or []:
        await conn.execute(
            "INSERT INTO tasker.workflow_step_edges (from_step_uuid, to_step_uuid, name) VALUES (%s, %s, 'provides')",
            [steps[parent], steps[child]],
        )
    await task_initial_transition_many(conn, [task_uuid], {"from": "factory"})
    await step_initial_transition_many(conn, list(steps.values()), {"from": "factory"})
    return task_uuid, steps
