"""A step that depends on a batch's convergence step is created with it, and runs after it (not at once)."""

from __future__ import annotations

from tasker.model.template import load_template_text
from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tasker.store.templates import template_register
from tests.e2e.runtime import create, running, wait_settled

TEMPLATE = """
name: import_then_publish
namespace_name: after_convergence
version: 1.0.0
steps:
  - name: ac_plan
    type: batchable
    handler:
      callable: examples.handlers.PlanImport
      initialization: { batch_size: 100, worker_template_name: import_rows }
  - name: import_rows
    type: batch_worker
    depends_on: [ac_plan]
    handler: { callable: examples.handlers.ImportRows }
    batch_config: { worker_template: import_rows }
  - name: ac_summary
    type: deferred_convergence
    depends_on: [import_rows]
    handler: { callable: examples.handlers.SummarizeImport }
  - name: ac_publish
    depends_on: [ac_summary]
    handler: { callable: tests.handlers.scenarios.ReportParent, initialization: { parent: ac_summary } }
"""


def test_only_the_batchable_step_is_created_with_the_task() -> None:
    template = load_template_text(TEMPLATE, "inline")
    assert template.initial_step_names() == ["ac_plan"]
    assert template.initial_edges() == []


async def test_a_step_after_a_convergence_runs_after_it(conn: Connection, db_url: str) -> None:
    await template_register(conn, load_template_text(TEMPLATE, "inline"))
    async with running(db_url, ["after_convergence"]):
        created = await create(conn, "after_convergence", "import_then_publish", {"rows": 250})
        task = await wait_settled(conn, created.task_uuid)
    steps = {s["name"]: s for s in await task_steps(conn, created.task_uuid)}
    assert task["state"] == "complete", {n: (s["state"], (s["results"] or {}).get("error")) for n, s in steps.items()}
    assert sorted(steps) == sorted(
        ["ac_plan", "ac_publish", "import_rows_001", "import_rows_002", "import_rows_003", "ac_summary"]
    )
    published = steps["ac_publish"]["results"]["result"]["parent_result"]
    assert published["rows"] == 250 and published["workers"] == 3
    assert steps["ac_publish"]["processed_at"] > steps["ac_summary"]["processed_at"]
