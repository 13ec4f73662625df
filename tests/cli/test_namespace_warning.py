"""``tasker task create`` warns on stderr when no worker seems to serve the task's namespace (the task is still
created): no worker connected to the database at all, or the namespace's queue holding messages nobody has read
for over a minute. A running worker for the namespace means no warning. Through the API as through the database."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest

from tasker.store.db import connect
from tests.api.server import register_templates, serving
from tests.cli.coverage import covers, invoke
from tests.e2e.processes import services

CREATE = ["task", "create", "linear_workflow", "mathematical_sequence", "--context", '{"even_number": 6}', "--json"]


async def _workers_connected(db_url: str) -> int:
    conn = await connect(db_url)
    try:
        row = await (
            await conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'tasker-worker'"
            )
        ).fetchone()
        return int(row["n"]) if row else 0
    finally:
        await conn.close()


@pytest.fixture
def worker_for(db_url: str) -> Iterator[None]:
    """A real `tasker worker -n linear_workflow` process, connected to the database before the test goes on."""
    with services(db_url, ["worker", "-n", "linear_workflow"]):
        deadline = time.monotonic() + 60
        while asyncio.run(_workers_connected(db_url)) == 0:
            assert time.monotonic() < deadline, "the worker never connected"
            time.sleep(0.1)
        yield


def created(result: object) -> dict[str, object]:
    assert getattr(result, "exit_code", None) == 0, getattr(result, "stderr", "")
    return dict(json.loads(getattr(result, "stdout", "")))


@covers("task create")
def test_no_worker_at_all_warns_and_still_creates(db_url: str) -> None:
    register_templates(db_url)
    result = invoke(db_url, *CREATE)
    task = created(result)
    assert task["status"] == "steps_in_process"
    assert result.stderr.startswith("warning:") and "no worker is connected" in result.stderr
    assert "tasker worker --namespace linear_workflow" in result.stderr
    assert result.stderr.count("\n") == 1, "one line"


@covers("task create")
def test_a_worker_serving_the_namespace_means_no_warning(db_url: str, worker_for: None) -> None:
    register_templates(db_url)
    result = invoke(db_url, *CREATE)
    created(result)
    assert result.stderr == ""


@covers("task create")
def test_unread_messages_over_a_minute_old_warn_although_workers_run(db_url: str, worker_for: None) -> None:
    """A worker runs, but for other namespaces: the namespace's first steps stay unread; once over a minute old
    (backdated here rather than waited for), the next task of that namespace gets the warning."""
    register_templates(db_url)
    first = invoke(db_url, "task", "create", "diamond_workflow", "diamond_pattern", "--context",
                   '{"even_number": 6}', "--json")  # fmt: skip
    created(first)
    assert first.stderr == "", "the first task's messages are fresh"

    async def backdate() -> None:
        conn = await connect(db_url)
        try:
            await conn.execute(
                "UPDATE pgmq.q_worker_diamond_workflow_queue SET enqueued_at = enqueued_at - interval '2 minutes',"
                " vt = vt - interval '2 minutes'"
            )
        finally:
            await conn.close()

    asyncio.run(backdate())
    second = invoke(db_url, "task", "create", "diamond_workflow", "diamond_pattern", "--context",
                    '{"even_number": 8}', "--json")  # fmt: skip
    created(second)
    assert second.stderr.startswith("warning:") and "worker_diamond_workflow_queue" in second.stderr
    assert "unread" in second.stderr and "diamond_workflow" in second.stderr


@covers("task create")
def test_through_the_api_the_warning_comes_back_with_the_task(db_url: str) -> None:
    register_templates(db_url)
    with serving(db_url) as base:
        result = invoke("postgresql://nobody@127.0.0.1:1/none", "task", "--api-url", base, *CREATE[1:])
        task = created(result)
        assert task["status"] == "steps_in_process"
        assert result.stderr.startswith("warning:") and "no worker is connected" in result.stderr
