"""Dynamic steps: what result processing does for decision, batchable and batch worker steps.

Decision points (create the chosen branch steps) and batchable steps (create one worker step per cursor range
plus the convergence steps) are checked *before* the step's transition is chosen (:func:`invalid_outcome`): an
outcome the template does not allow fails the step for good with a stored error naming the offending step. After
the step completes, :func:`after_step_completed` creates the new steps and edges. Both run inside the result's
transaction with the task locked, so the new steps commit together with the completion that produced them, and
the plan is applied idempotently, so a duplicate creates nothing.

Batch workers' ``failure_strategy`` is enforced here too: :func:`failure_strategy` tells result processing how a
permanently failed worker ends (``continue_on_failure``: resolved so its convergence runs with the failure on
record; ``fail_fast``: error, blocking the task; ``isolate``: error awaiting an operator while the other steps go
on, see :func:`isolated_steps`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from tasker.model.dynamic import InvalidOutcome, failure_strategy_of, plan_growth
from tasker.model.template import FailureStrategy, TaskTemplate
from tasker.store.db import Connection
from tasker.store.dynamic import Created, dynamic_steps_create, step_isolated_many

log = logging.getLogger("tasker.dynamic")

DYNAMIC_TYPES = frozenset({"decision", "batchable"})


def invalid_outcome(outcome: dict[str, Any], template: TaskTemplate) -> str | None:
    """Why a completed decision or batchable step's outcome cannot be applied, or None when it can."""
    if template.step(outcome["template_step_name"]).type not in DYNAMIC_TYPES:
        return None
    try:
        plan_growth(template, outcome["template_step_name"], outcome["results"])
    except InvalidOutcome as exc:
        return exc.message
    return None


def rejected_results(outcome: dict[str, Any], message: str) -> dict[str, Any]:
    """The stored results of a step whose outcome was refused: its own result kept, marked a permanent error."""
    stored = dict(outcome["results"] or {})
    metadata = {**(stored.get("metadata") or {}), "retryable": False, "error_type": "invalid_outcome"}
    return {
        **stored,
        "success": False,
        "status": "permanent_error",
        "metadata": metadata,
        "error": {"message": message, "error_type": "invalid_outcome", "retryable": False},
    }


def may_grow(outcome: dict[str, Any], template: TaskTemplate) -> bool:
    """Whether completing this step may add steps to its task (a decision or batchable step)."""
    return template.step(outcome["template_step_name"]).type in DYNAMIC_TYPES


async def after_step_completed(conn: Connection, outcome: dict[str, Any], template: TaskTemplate) -> Created:
    """Grow the task's DAG from a completed step's outcome; standard steps add nothing. Idempotent."""
    growth = plan_growth(template, outcome["template_step_name"], outcome["results"])
    if growth is None or growth.empty:
        return Created(0, 0)
    created = await dynamic_steps_create(
        conn, outcome["task_uuid"], growth, {"source_step_uuid": outcome["workflow_step_uuid"]}
    )
    log.debug("task %s: %s created %d step(s)", outcome["task_uuid"], growth.source_step, created.steps)
    return created


def failure_strategy(outcome: dict[str, Any], template: TaskTemplate) -> FailureStrategy | None:
    """The failure strategy of a batch worker instance, or None for any other step."""
    if outcome["name"] == outcome["template_step_name"]:
        return None
    definition = template.step(outcome["template_step_name"])
    if definition.type != "batch_worker":
        return None
    return failure_strategy_of(definition)


async def isolated_steps(conn: Connection, readiness: Sequence[dict[str, Any]]) -> set[UUID]:
    """Failed steps (in ``error``) whose failure should not stop the rest of their task (strategy ``isolate``)."""
    failed = [row["workflow_step_uuid"] for row in readiness if row["current_state"] == "error"]
    return await step_isolated_many(conn, failed) if failed else set()
