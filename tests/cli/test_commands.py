"""Every one-shot ``tasker`` command run in this process (Typer's CliRunner) against the test's own database,
with workflows run by a real orchestrator and worker where a command needs tasks in some state."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from tasker.engine.staleness import StalenessDefaults, sweep_stale_tasks
from tasker.model.states import TaskState
from tasker.store.db import connect
from tasker.store.tasks import task_get, task_steps
from tests.cli.coverage import covers, invoke
from tests.e2e.runtime import TEMPLATES, create, register_fixture_templates, running, wait_settled
from tests.store.test_dlq import task_in

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# a step that fails retryably and then waits ten minutes for its next attempt: "retrying" for the whole test
RETRYING_TEMPLATE = """
name: slow_retry
namespace_name: cli_checks
version: 1.0.0
steps:
  - name: flaky_gateway
    handler: { callable: tests.handlers.scenarios.RetryableError }
    retry: { retryable: true, max_attempts: 3, backoff: exponential, backoff_base_ms: 600000, max_backoff_ms: 600000 }
"""


def ok(result: Any) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return str(result.stdout)


def as_json(result: Any) -> Any:
    return json.loads(ok(result))


@covers("db migrate", "db schema-doc")
def test_db_migrate_and_schema_doc(empty_db_url: str, tmp_path: Path) -> None:
    first = invoke(empty_db_url, "db", "migrate")
    assert first.exit_code == 0 and "applied" in first.stderr and "0001_schema" in first.stderr
    again = invoke(empty_db_url, "db", "migrate")
    assert again.exit_code == 0 and "database is up to date" in again.stderr
    text = ok(invoke(empty_db_url, "db", "schema-doc"))
    assert "workflow_steps" in text and "tasks_dlq" in text
    written = tmp_path / "schema.md"
    assert invoke(empty_db_url, "db", "schema-doc", "-o", str(written)).exit_code == 0
    assert written.read_text() == text


@covers("template validate", "template register", "template list", "template show")
def test_template_commands(db_url: str, tmp_path: Path) -> None:
    validated = ok(invoke(db_url, "template", "validate", str(TEMPLATES / "workflows")))
    assert "linear_workflow/mathematical_sequence" in validated and validated.count("ok ") >= 7
    registered = as_json(invoke(db_url, "template", "register", str(TEMPLATES / "workflows"), "--json"))
    assert {r["status"] for r in registered} == {"created"}
    assert "unchanged" in ok(invoke(db_url, "template", "register", str(TEMPLATES / "workflows" / "linear.yaml")))

    table = ok(invoke(db_url, "template", "list"))
    assert "linear_workflow" in table and "mathematical_sequence" in table and "1.0.0" in table
    listed = as_json(invoke(db_url, "template", "list", "--namespace", "linear_workflow", "--json"))
    assert [(t["name"], t["step_count"]) for t in listed] == [("mathematical_sequence", 4)]
    assert as_json(invoke(db_url, "template", "list", "--namespace", "nothing_here", "--json")) == []

    shown = as_json(invoke(db_url, "template", "show", "linear_workflow", "mathematical_sequence"))
    assert shown["name"] == "mathematical_sequence" and len(shown["steps"]) == 4
    missing = invoke(db_url, "template", "show", "linear_workflow", "nope")
    assert missing.exit_code == 1 and missing.stderr.count("\n") == 1 and "error" in missing.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nnamespace_name: y\nversion: 1.0.0\nsteps:\n  - name: a\n    depends_on: [nowhere]\n"
                      "    handler: { callable: tests.handlers.scenarios.Succeed }\n")  # fmt: skip
    refused = invoke(db_url, "template", "validate", str(broken))
    assert refused.exit_code == 1 and "broken.yaml" in refused.stderr and "Traceback" not in refused.stderr


@covers("config show")
def test_config_show(db_url: str) -> None:
    shown = as_json(invoke(db_url, "config", "show", "--json", TASKER_API_KEY="a-secret"))
    assert shown["env"] == "test" and shown["api_key"] == "**********" and shown["database_url"] == "**********"
    assert "a-secret" not in ok(invoke(db_url, "config", "show", TASKER_API_KEY="a-secret"))


@covers("health")
def test_health_on_the_database(db_url: str) -> None:
    text = ok(invoke(db_url, "health"))
    assert "status: healthy" in text and "database reachable" in text
    down = invoke("postgresql://nobody@127.0.0.1:1/none", "health")
    assert down.exit_code == 1 and down.stderr.count("\n") == 1 and "cannot connect to PostgreSQL" in down.stderr


async def _blocked_and_retrying(db_url: str, tmp_path: Path) -> dict[str, Any]:
    """Three fragile_chain tasks blocked on a failed step, and a task whose step is waiting for its retry."""
    conn = await connect(db_url)
    try:
        await register_fixture_templates(conn)
        async with running(db_url, ["runtime_checks", "cli_checks"]):
            blocked = [
                await create(conn, "runtime_checks", "fragile_chain", {"fixed_file": str(tmp_path / "fixed"), "n": n})
                for n in range(3)
            ]
            retrying = await create(conn, "cli_checks", "slow_retry", {})
            for task in blocked:
                assert (await wait_settled(conn, task.task_uuid))["state"] == TaskState.BLOCKED_BY_FAILURES
            deadline = time.monotonic() + 60
            while (await task_steps(conn, retrying.task_uuid))[0]["state"] != "waiting_for_retry":
                assert time.monotonic() < deadline, "the retrying step never failed its first attempt"
                await asyncio.sleep(0.05)
        steps = {s["name"]: s["workflow_step_uuid"] for s in await task_steps(conn, blocked[0].task_uuid)}
        others = [
            {s["name"]: s["workflow_step_uuid"] for s in await task_steps(conn, t.task_uuid)} for t in blocked[1:]
        ]
    finally:
        await conn.close()
    return {
        "tasks": [str(t.task_uuid) for t in blocked],
        "failed_step": str(steps["fragile_step"]),
        "other_failed_steps": [str(s["fragile_step"]) for s in others],
        "retrying": str(retrying.task_uuid),
    }


@covers(
    "task get", "task steps", "task step", "task visualize", "task audit", "task reset-step", "task resolve-step",
    "task retry-failed", "task list",
)  # fmt: skip
def test_failed_steps_show_why_and_operators_act_on_them(db_url: str, tmp_path: Path) -> None:
    template = tmp_path / "slow_retry.yaml"
    template.write_text(RETRYING_TEMPLATE)
    ok(invoke(db_url, "template", "register", str(template)))
    made = asyncio.run(_blocked_and_retrying(db_url, tmp_path))
    task, step = made["tasks"][0], made["failed_step"]
    reason = "the upstream account is locked"

    shown = ok(invoke(db_url, "task", "get", task))
    assert reason in shown and "permanent_error" in shown
    assert step in shown, "the step's full UUID is in the table"
    assert reason in ok(invoke(db_url, "task", "steps", task))
    assert reason in ok(invoke(db_url, "task", "step", task, step))
    picture = ok(invoke(db_url, "task", "visualize", task))
    assert reason in picture
    assert reason in ok(invoke(db_url, "task", "visualize", task, "--format", "tree"))
    chart = ok(invoke(db_url, "task", "visualize", task, "--format", "mermaid"))
    assert f"%% fragile_step error: permanent_error: {reason}" in chart and "error<br/>permanent_error" in chart
    retrying = ok(invoke(db_url, "task", "get", made["retrying"]))
    assert "waiting_for_retry" in retrying and "retryable_error: the gateway is unavailable" in retrying

    trail = ok(invoke(db_url, "task", "audit", task, step))
    assert "no" in trail and "error" in trail
    assert len(as_json(invoke(db_url, "task", "audit", task, step, "--json"))) == 1

    (tmp_path / "fixed").write_text("yes")
    reset = ok(invoke(db_url, "task", "reset-step", task, step, "--by", "ops", "--reason", "unlocked"))
    assert "fragile_step" in reset and step in reset
    resolved = as_json(
        invoke(db_url, "task", "resolve-step", made["tasks"][1], made["other_failed_steps"][0], "--by", "ops", "--json")
    )
    assert resolved["current_state"] == "resolved_manually"
    retried = ok(invoke(db_url, "task", "retry-failed", made["tasks"][2]))
    assert made["tasks"][2] in retried

    listed = ok(invoke(db_url, "task", "list", "--namespace", "runtime_checks"))
    for uuid in made["tasks"]:
        assert uuid in listed, f"{uuid} is shown in full in an 80-column table"
    assert "page 1 of 1 (3 tasks)" in listed


@covers("dlq list", "dlq get", "dlq update", "dlq stats", "dlq queue")
def test_dlq_commands_on_a_dead_lettered_task(db_url: str) -> None:
    async def dead_lettered() -> UUID:
        conn = await connect(db_url)
        try:
            task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=45)
            await sweep_stale_tasks(
                conn, defaults=StalenessDefaults(), dry_run=False, batch_size=10, processor_uuid=None
            )
            return task_uuid
        finally:
            await conn.close()

    task = str(asyncio.run(dead_lettered()))
    page = as_json(invoke(db_url, "dlq", "list", "--json"))
    assert page["total"] == 1
    entry = str(page["entries"][0]["dlq_entry_uuid"])
    table = ok(invoke(db_url, "dlq", "list", "--status", "pending"))
    assert entry in table and task in table, "both UUIDs whole in an 80-column table"
    assert "1 of 1 entries" in table
    shown = ok(invoke(db_url, "dlq", "get", task))
    assert entry in shown and "staleness_timeout" in shown and "was steps_in_process" in shown
    assert as_json(invoke(db_url, "dlq", "get", entry, "--json"))["task_uuid"] == task
    assert "staleness_timeout" in ok(invoke(db_url, "dlq", "stats"))
    assert as_json(invoke(db_url, "dlq", "stats", "--json"))[0]["pending"] == 1
    assert entry in ok(invoke(db_url, "dlq", "queue"))
    updated = ok(invoke(db_url, "dlq", "update", entry, "--status", "manually_resolved", "--notes", "unlocked",
                        "--resolved-by", "ops", "--metadata", '{"ticket": 7}'))  # fmt: skip
    assert "manually_resolved" in updated
    after = as_json(invoke(db_url, "dlq", "get", entry, "--json"))
    assert after["resolved_by"] == "ops" and after["metadata"]["ticket"] == 7
    nothing = invoke(db_url, "dlq", "update", entry)
    assert nothing.exit_code == 1 and "nothing to update" in nothing.stderr
    bad = invoke(db_url, "dlq", "update", entry, "--metadata", "[1]")
    assert bad.exit_code == 1 and "must be a JSON object" in bad.stderr


@covers("dlq sweep")
def test_dlq_sweep_dry_run_then_for_real(db_url: str) -> None:
    async def stale() -> UUID:
        conn = await connect(db_url)
        try:
            task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=45)
            return task_uuid
        finally:
            await conn.close()

    async def state_of(task_uuid: UUID) -> str:
        conn = await connect(db_url)
        try:
            return str((await task_get(conn, task_uuid))["state"])
        finally:
            await conn.close()

    task = asyncio.run(stale())
    dry = ok(invoke(db_url, "dlq", "sweep", "--dry-run"))
    assert str(task) in dry and "1 stale task(s) (dry run: nothing changed)" in dry
    assert asyncio.run(state_of(task)) == "steps_in_process"
    done = as_json(invoke(db_url, "dlq", "sweep", "--json"))
    assert [o["task_uuid"] for o in done] == [str(task)]
    assert asyncio.run(state_of(task)) == "error"
    assert "staleness_timeout" in ok(invoke(db_url, "dlq", "list"))
    unaged = asyncio.run(_fresh_task(db_url))
    assert str(unaged) not in ok(invoke(db_url, "dlq", "sweep", "--dry-run"))


async def _fresh_task(db_url: str) -> UUID:
    conn = await connect(db_url)
    try:
        task_uuid, _ = await task_in(conn, TaskState.STEPS_IN_PROCESS, in_state_minutes=0)
        return task_uuid
    finally:
        await conn.close()


@covers("task create", "task cancel", "task wait", "task complete-step")
def test_task_lifecycle_on_the_database(db_url: str) -> None:
    ok(invoke(db_url, "template", "register", str(TEMPLATES / "workflows" / "linear.yaml")))
    created = ok(invoke(db_url, "task", "create", "linear_workflow", "mathematical_sequence",
                        "--context", '{"even_number": 6}'))  # fmt: skip
    (task,) = UUID_PATTERN.findall(created.split("\n")[0])
    steps = as_json(invoke(db_url, "task", "steps", task, "--json"))
    done = ok(invoke(db_url, "task", "complete-step", task, steps[0]["step_uuid"], "--by", "ops", "--result", "36"))
    assert "complete" in done
    bad = invoke(db_url, "task", "create", "linear_workflow", "mathematical_sequence", "--context", "{nope")
    assert bad.exit_code == 1 and "--context is not valid JSON" in bad.stderr and bad.stderr.count("\n") == 1
    assert "cancelled" in ok(invoke(db_url, "task", "cancel", task))
    waited = invoke(db_url, "task", "wait", task, "--timeout", "5", "--json")
    assert waited.exit_code == 1 and json.loads(waited.stdout)["status"] == "cancelled"
