"""The CLI as a real subprocess: against the database directly and through a real API server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tasker.client import AsyncTaskerClient
from tasker.model.requests import TaskRequest
from tasker.store.db import Connection
from tests.api.server import register_templates, serving
from tests.cli.coverage import covers, record
from tests.e2e.runtime import register_fixture_templates, running

ROOT = Path(__file__).resolve().parent.parent.parent


def _env(db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKER_")}
    return {**env, "TASKER_DATABASE_URL": db_url, "TASKER_ENV": "test", "PYTHONPATH": str(ROOT), **extra}


def tasker(db_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    record(args)
    return subprocess.run(
        [sys.executable, "-m", "tasker.cli.main", *args],
        cwd=ROOT,
        env=_env(db_url, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)


@covers(
    "task create", "task list", "task get", "task steps", "task step", "task complete-step", "task audit",
    "task reset-step", "task visualize", "task cancel", "task wait",
)  # fmt: skip
def test_task_commands_on_the_database(db_url: str) -> None:
    register_templates(db_url)
    created = as_json(
        tasker(db_url, "task", "create", "linear_workflow", "mathematical_sequence", "--context", '{"even_number": 6}',
               "--tag", "cli", "--json")
    )  # fmt: skip
    task_uuid = created["task_uuid"]
    assert created["status"] == "steps_in_process" and created["tags"] == ["cli"]
    listed = as_json(tasker(db_url, "task", "list", "--namespace", "linear_workflow", "--json"))
    assert [t["task_uuid"] for t in listed["tasks"]] == [task_uuid]
    assert listed["pagination"]["total_count"] == 1
    assert as_json(tasker(db_url, "task", "get", task_uuid, "--json"))["total_steps"] == 4
    steps = as_json(tasker(db_url, "task", "steps", task_uuid, "--json"))
    first = steps[0]["step_uuid"]
    assert as_json(tasker(db_url, "task", "step", task_uuid, first, "--json"))["name"] == "linear_step_1"
    done = as_json(
        tasker(db_url, "task", "complete-step", task_uuid, first, "--result", '{"value": 36}', "--by", "ops", "--json")
    )
    assert done["current_state"] == "complete" and done["results"]["result"] == {"value": 36}
    assert as_json(tasker(db_url, "task", "audit", task_uuid, first, "--json")) == []
    refused = tasker(db_url, "task", "reset-step", task_uuid, first, "--by", "ops")
    assert refused.returncode == 1 and "only a step in 'error'" in refused.stderr

    picture = tasker(db_url, "task", "visualize", task_uuid)
    assert picture.returncode == 0, picture.stderr
    assert "flowchart TD" in picture.stdout and "linear_step_1<br/>complete" in picture.stdout
    assert "s0 --> s1" in picture.stdout and "linear_step_3 pending" in picture.stdout

    human = tasker(db_url, "task", "list")
    assert human.returncode == 0 and "page 1 of 1 (1 tasks)" in human.stdout
    assert as_json(tasker(db_url, "task", "cancel", task_uuid, "--json"))["status"] == "cancelled"
    waited = tasker(db_url, "task", "wait", task_uuid, "--timeout", "5")
    assert waited.returncode == 1, "a task that did not complete exits non-zero"
    missing = tasker(db_url, "task", "get", "01900000-0000-7000-8000-000000000000")
    assert missing.returncode == 1 and "does not exist" in missing.stderr


@covers("health", "config show")
def test_health_and_config_show(db_url: str) -> None:
    health = as_json(tasker(db_url, "health", "--json"))
    assert health["status"] == "healthy" and health["info"]["system_health"]["total_tasks"] == 0
    shown = as_json(tasker(db_url, "config", "show", "--json", TASKER_API_KEY="very-secret-value"))
    assert shown["database_url"] == "**********" and shown["api_key"] == "**********" and shown["env"] == "test"
    text = tasker(db_url, "config", "show", TASKER_API_KEY="very-secret-value")
    assert text.returncode == 0 and "very-secret-value" not in text.stdout and db_url not in text.stdout


@covers("task wait", "health")
async def test_workflow_created_through_the_client_completes_under_task_wait(db_url: str, conn: Connection) -> None:
    await register_fixture_templates(conn)
    with serving(db_url) as base:
        async with running(db_url, ["linear_workflow"]), AsyncTaskerClient(base) as client:
            task = await client.create_task(
                TaskRequest(namespace="linear_workflow", name="mathematical_sequence", context={"even_number": 6})
            )
            record(["task", "wait"])
            record(["health"])
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tasker.cli.main", "task", "--api-url", base, "wait", str(task.task_uuid),
                "--timeout", "60", "--json",
                cwd=ROOT, env=_env("postgresql://nobody@127.0.0.1:1/none"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await process.communicate()
            assert process.returncode == 0, err.decode() + out.decode()
            final = json.loads(out)
            assert final["status"] == "complete" and final["completed_steps"] == 4
            assert final["steps"][3]["results"]["result"]["result"] == 69
            health = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tasker.cli.main", "health", "--api-url", base, "--json",
                cwd=ROOT, env=_env("postgresql://nobody@127.0.0.1:1/none"), stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            report, _ = await health.communicate()
            assert health.returncode == 0 and json.loads(report)["checks"]["web_database"]["status"] == "healthy"


@covers("task visualize", "task retry-failed")
async def test_visualize_shows_dynamically_created_steps(db_url: str) -> None:
    from tasker.store.db import connect
    from tests.e2e.runtime import create, register_fixture_templates, running, wait_settled

    conn = await connect(db_url)
    try:
        await register_fixture_templates(conn)
        async with running(db_url, ["conditional_approval"]):
            created = await create(conn, "conditional_approval", "approval_routing", {"amount": 7500, "requester": "r"})
            assert (await wait_settled(conn, created.task_uuid))["state"] == "complete"
    finally:
        await conn.close()
    picture = tasker(db_url, "task", "visualize", str(created.task_uuid))
    assert picture.returncode == 0, picture.stderr
    for created_later in (
        "manager_approval<br/>complete",
        "finance_review<br/>complete",
        "finalize_approval<br/>complete",
    ):
        assert created_later in picture.stdout
    assert "auto_approve" not in picture.stdout, "branches the decision did not choose do not exist"
    retried = tasker(db_url, "task", "retry-failed", str(created.task_uuid))
    assert retried.returncode == 1 and "no failed steps" in retried.stderr
