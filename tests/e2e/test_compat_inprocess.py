"""tasker-core's semantics, end to end, with small templates written in its format for this suite."""

from __future__ import annotations

from tasker.model.template import load_template_text
from tasker.store.db import Connection
from tasker.store.tasks import task_steps
from tasker.store.templates import template_register
from tests.e2e.runtime import create, running, wait_settled

BATCHABLE_WITHOUT_WORKER = """
name: empty_split
namespace_name: compat
version: 1.0.0
steps:
  - name: split
    type: batchable
    handler: { callable: tests.handlers.dynamic.NoBatchesAnonymous }
  - name: after
    depends_on: [split]
    handler: { callable: tests.handlers.scenarios.Succeed }
"""


async def test_a_batchable_step_with_no_batches_and_no_worker_completes(conn: Connection, db_url: str) -> None:
    """tasker-core treats it as non-fatal: the step completes, creates nothing, and the task runs on."""
    await template_register(conn, load_template_text(BATCHABLE_WITHOUT_WORKER))
    async with running(db_url, ["compat"]):
        created = await create(conn, "compat", "empty_split", {"even_number": 2})
        task = await wait_settled(conn, created.task_uuid)
    steps = {s["name"]: s["state"] for s in await task_steps(conn, created.task_uuid)}
    assert task["state"] == "complete", steps
    assert steps == {"split": "complete", "after": "complete"}


EXPLICIT_RESOLVER = """
name: explicit_resolver
namespace_name: compat
version: 1.0.0
steps:
  - name: only_registered
    handler: { callable: tests.handlers.scenarios.Succeed, resolver: explicit_mapping }
"""


async def test_an_explicit_mapping_resolver_does_not_import(conn: Connection, db_url: str) -> None:
    """The handler is importable, but the template says to look only in the registry: it is not found there."""
    await template_register(conn, load_template_text(EXPLICIT_RESOLVER))
    async with running(db_url, ["compat"]):
        created = await create(conn, "compat", "explicit_resolver", {})
        task = await wait_settled(conn, created.task_uuid)
    [step] = await task_steps(conn, created.task_uuid)
    assert task["state"] == "blocked_by_failures"
    assert step["results"]["error"]["error_type"] == "handler_not_found"
    assert "explicit_mapping" in step["results"]["error"]["message"]


CHECKPOINT_YIELD = """
name: yielding
namespace_name: compat
version: 1.0.0
steps:
  - name: count
    handler: { callable: tests.handlers.checkpoint.YieldingCounter }
"""


async def test_a_returned_checkpoint_yield_is_stored_and_called_again(conn: Connection, db_url: str) -> None:
    await template_register(conn, load_template_text(CHECKPOINT_YIELD))
    async with running(db_url, ["compat"]):
        created = await create(conn, "compat", "yielding", {})
        task = await wait_settled(conn, created.task_uuid)
    [step] = await task_steps(conn, created.task_uuid)
    assert task["state"] == "complete"
    assert step["results"]["result"] == {"sum": sum(range(30)), "resumed_from": 20, "attempt": 1}
    assert [h["cursor"] for h in step["checkpoint"]["history"]] == [10, 20]
