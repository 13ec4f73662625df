"""Dynamic steps: the hook the result processor calls after a step completes.

Decision points (create the chosen branch steps) and batchable steps (create one worker step per cursor range
plus the convergence steps) plug in here; they run inside the result's transaction with the task locked, so the
new steps and their edges commit together with the completion that produced them.
"""

from __future__ import annotations

from typing import Any

from tasker.model.template import TaskTemplate
from tasker.store.db import Connection


async def after_step_completed(conn: Connection, outcome: dict[str, Any], template: TaskTemplate) -> None:
    """Grow the task's DAG from a completed step's outcome; standard steps add nothing."""
    step_type = template.step(outcome["template_step_name"]).type
    if step_type in ("decision", "batchable"):
        # Extension point for decision outcomes and batch fan-out (next milestone).
        return
